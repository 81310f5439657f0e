/**
 * The protocol library: the only code that opens the signaling WebSocket.
 * No DOM: the browser app and Node bots/tests use it alike (Node passes the
 * `ws` package's WebSocket).
 */
import { serverMessage, type ClientMessage, type ServerMessage, type ServerMessageOf } from '../protocol/messages.js';

type ServerType = ServerMessage['type'];
type Handler<T extends ServerType> = (message: ServerMessageOf<T>) => void;

/** The part of a WebSocket this library needs (browser WebSocket and `ws` both fit). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'close' | 'error' | 'message', listener: (event: any) => void): void;
}
export type SocketFactory = (url: string) => SocketLike;

export interface Disconnect {
  code: number;
  /** True when the server ended our part deliberately (a `closed` notice arrived first). */
  notified: boolean;
}

export class SignalingClient {
  private socket?: SocketLike;
  private readonly handlers = new Map<ServerType, Set<Handler<any>>>();
  private readonly anyHandlers = new Set<(m: ServerMessage) => void>();
  private readonly disconnectHandlers = new Set<(d: Disconnect) => void>();
  private seq = 0;
  private notified = false;
  /** Messages from the server that failed validation (kept as a count, never logged). */
  invalidMessages = 0;

  constructor(
    private readonly url: string,
    private readonly createSocket: SocketFactory = (u) => new WebSocket(u),
  ) {}

  connect(timeoutMs = 10_000): Promise<void> {
    const socket = this.createSocket(this.url);
    this.socket = socket;
    socket.addEventListener('message', (event: { data: unknown }) => this.receive(event.data));
    socket.addEventListener('close', (event: { code: number }) => {
      for (const h of this.disconnectHandlers) h({ code: event.code, notified: this.notified });
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('Could not reach the server.')), timeoutMs);
      socket.addEventListener('open', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.addEventListener('close', () => {
        clearTimeout(timer);
        reject(new Error('Could not reach the server.'));
      });
    });
  }

  get open(): boolean {
    return this.socket?.readyState === 1;
  }

  /** Send a message; returns its sequence number (echoed by an `error` that refuses it). */
  send(message: ClientMessage): number {
    const seq = ++this.seq;
    this.socket?.send(JSON.stringify({ ...message, seq }));
    return seq;
  }

  on<T extends ServerType>(type: T, handler: Handler<T>): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  onAny(handler: (m: ServerMessage) => void): () => void {
    this.anyHandlers.add(handler);
    return () => this.anyHandlers.delete(handler);
  }

  onDisconnect(handler: (d: Disconnect) => void): () => void {
    this.disconnectHandlers.add(handler);
    return () => this.disconnectHandlers.delete(handler);
  }

  /** The next message of a type (for bots and tests). */
  next<T extends ServerType>(type: T, timeoutMs = 10_000): Promise<ServerMessageOf<T>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`No ${type} message within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on(type, (m) => {
        clearTimeout(timer);
        off();
        resolve(m);
      });
    });
  }

  close(): void {
    this.socket?.close(1000);
  }

  private receive(data: unknown): void {
    if (typeof data !== 'string') {
      // `ws` hands over Buffers; browsers hand over strings.
      if (data && typeof (data as { toString?: unknown }).toString === 'function') data = String(data);
      else return void this.invalidMessages++;
    }
    let parsed: ServerMessage;
    try {
      const result = serverMessage.safeParse(JSON.parse(data as string));
      if (!result.success) return void this.invalidMessages++;
      parsed = result.data;
    } catch {
      return void this.invalidMessages++;
    }
    if (parsed.type === 'closed') this.notified = true;
    for (const h of this.anyHandlers) safely(h, parsed);
    for (const h of this.handlers.get(parsed.type) ?? []) safely(h, parsed);
  }
}

/** One bad listener must not stop the others. */
function safely<T>(fn: (arg: T) => void, arg: T): void {
  try {
    fn(arg);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}
