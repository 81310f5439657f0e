/**
 * The protocol library: the only code that opens the signaling WebSocket.
 * No DOM: the browser app and Node bots/tests use it alike (Node passes the
 * `ws` package's WebSocket).
 */
import {
  serverMessage,
  UNCOUNTED_SERVER_MESSAGES,
  type ClientMessage,
  type ServerMessage,
  type ServerMessageOf,
} from '../protocol/messages.js';

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
  /** True when our part ended deliberately: a `closed` notice arrived first, or we closed it ourselves. */
  notified: boolean;
}

/** How often we show the server we are here, and how long silence means the connection is dead. */
const KEEPALIVE_MS = 10_000;
const SILENCE_MS = 25_000;
/** Messages kept while the connection is lost (sent once we are back). */
const MAX_HELD = 100;

export class SignalingClient {
  private socket?: SocketLike;
  private keepalive?: ReturnType<typeof setInterval>;
  private lastHeard = 0;
  /** close() was called: no more reconnecting. */
  private shut = false;
  /** While the connection is lost, messages wait here until `resumed`. */
  private held?: ClientMessage[];
  /** Room messages received so far (see the `resume` message). */
  received = 0;
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
    this.notified = false;
    let lost = false;
    // A connection is lost once: on close, on a failed open, or after a long silence.
    const lose = (code: number) => {
      if (lost) return;
      lost = true;
      if (this.socket === socket) clearInterval(this.keepalive);
      for (const h of this.disconnectHandlers) h({ code, notified: this.notified });
    };
    socket.addEventListener('message', (event: { data: unknown }) => {
      if (this.socket !== socket) return;
      this.lastHeard = Date.now();
      this.receive(event.data);
    });
    socket.addEventListener('close', (event: { code: number }) => lose(event.code));
    // Failures surface as 'close'; an unheard 'error' would crash a Node process using `ws`.
    socket.addEventListener('error', () => undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error('Could not reach the server.'));
        socket.close();
        lose(1006);
      }, timeoutMs);
      socket.addEventListener('open', () => {
        clearTimeout(timer);
        this.lastHeard = Date.now();
        clearInterval(this.keepalive);
        this.keepalive = setInterval(() => {
          if (Date.now() - this.lastHeard > SILENCE_MS) {
            socket.close();
            return lose(1006);
          }
          socket.send(JSON.stringify({ type: 'ping' }));
        }, KEEPALIVE_MS);
        (this.keepalive as { unref?: () => void }).unref?.();
        resolve();
      });
      socket.addEventListener('close', () => {
        clearTimeout(timer);
        reject(new Error('Could not reach the server.'));
      });
    });
  }

  /**
   * After a lost connection: connect again and ask to be the same participant
   * (see `resume`). Messages sent meanwhile are held and go out after `resumed`.
   * A failure shows up as another disconnect.
   */
  async resume(token: string, timeoutMs = 5000): Promise<void> {
    if (this.shut) throw new Error('closed');
    this.held ??= [];
    await this.connect(timeoutMs);
    this.socket?.send(JSON.stringify({ type: 'resume', token, received: this.received, seq: ++this.seq }));
  }

  /** From now on, messages wait for `resume` instead of going into a dead connection. */
  hold(): void {
    this.held ??= [];
  }

  get open(): boolean {
    return this.socket?.readyState === 1;
  }

  /** Send a message; returns its sequence number (echoed by an `error` that refuses it). */
  send(message: ClientMessage): number {
    const seq = ++this.seq;
    if (this.held) {
      if (this.held.length < MAX_HELD) this.held.push({ ...message, seq });
    } else {
      this.socket?.send(JSON.stringify({ ...message, seq }));
    }
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
    clearInterval(this.keepalive);
    this.held = undefined;
    this.notified = true;
    this.shut = true;
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
    if (parsed.type === 'closed') {
      this.notified = true;
      this.held = undefined;
    }
    if (!UNCOUNTED_SERVER_MESSAGES.has(parsed.type)) this.received++;
    if (parsed.type === 'resumed') {
      const held = this.held ?? [];
      this.held = undefined;
      for (const m of held) this.socket?.send(JSON.stringify(m));
    }
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
