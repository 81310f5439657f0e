/**
 * The relay entrance: a second UDP port per media connection, announced as one more host
 * candidate, through which browsers behind a TURN server reach the SFU.
 *
 * Why it exists: Chromium's connectivity checks through a TURN server it reaches over TCP or TLS
 * carry an ICE-CONTROLLING/ICE-CONTROLLED tie-breaker of 0. libjuice (node-datachannel's ICE
 * agent, prebuilt) stores the tie-breaker as "present" only when it is not 0, so it sees neither
 * attribute and answers every such check with 400 Bad Request; Chromium never gets a working
 * pair (docs/MEDIA.md, "Relayed checks"). A connection's checks arriving here get a tie-breaker
 * of 1 and are re-signed with the connection's ICE password before they go on to libjuice's own
 * port from an inner socket; libjuice's responses get the browser's real address back in
 * XOR-MAPPED-ADDRESS. Everything else (DTLS, SRTP, SRTCP) is copied both ways untouched.
 *
 * Cost: packets through here cross Node's event loop (two extra socket operations each), so only
 * checks that need the repair are let in: a check with a real tie-breaker (direct UDP, TURN over
 * UDP) goes unanswered here, and that browser uses libjuice's own port. Only signed checks open a
 * path (at most MAX_PEERS, each closed after IDLE_MS without traffic), so strangers cannot make
 * the SFU open sockets. The inner sockets are on loopback.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { BINDING_REQUEST, repairRelayedCheck, rewriteMappedAddress, stunType, verifyIntegrity } from './stun.js';

const MAX_PEERS = 4;
const IDLE_MS = 30_000;
/** Host-candidate priority for repaired checks, so libjuice nominates this path over the same relay reached at its own port. */
const FORWARDED_CHECK_PRIORITY = (126 << 24) + (65535 << 8) + 255;
/** Below libjuice's host candidate (local preference 65535): direct browsers prefer libjuice's own port. */
export const ENTRANCE_CANDIDATE_PRIORITY = (126 << 24) + (1 << 8) + 255;

interface Peer {
  inner: Socket;
  address: string;
  port: number;
  lastSeen: number;
}

export interface RelayEntranceOptions {
  /** Address to bind (MEDIA_ADDRESS). Default: all interfaces. */
  bindAddress?: string;
  portRange?: { begin: number; end: number };
}

export class RelayEntrance {
  readonly #socket: Socket;
  readonly #options: RelayEntranceOptions;
  readonly #peers = new Map<string, Peer>();
  #target?: { address: string; port: number };
  #password?: string;
  #timer: NodeJS.Timeout;
  #closed = false;
  port = 0;

  private constructor(socket: Socket, options: RelayEntranceOptions) {
    this.#socket = socket;
    this.#options = options;
    socket.on('message', (msg, from) => this.#fromOutside(msg, from.address, from.port));
    socket.on('error', () => this.close());
    this.#timer = setInterval(() => this.#expire(), IDLE_MS / 2).unref();
  }

  /** Binds a port in the range (or any port), IPv4. */
  static async open(options: RelayEntranceOptions): Promise<RelayEntrance> {
    const range = options.portRange;
    const tries = range ? Math.min(32, range.end - range.begin + 1) : 1;
    let lastError: unknown;
    for (let i = 0; i < tries; i++) {
      const port = range ? randomInt(range.begin, range.end + 1) : 0;
      const socket = createSocket({ type: 'udp4' });
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind({ port, address: options.bindAddress, exclusive: true }, () => {
            socket.off('error', reject);
            resolve();
          });
        });
        const entrance = new RelayEntrance(socket, options);
        entrance.port = socket.address().port;
        return entrance;
      } catch (err) {
        lastError = err;
        socket.close();
      }
    }
    throw new Error(`no free UDP port for the relay entrance${range ? ` in ${range.begin}-${range.end}` : ''}: ${lastError instanceof Error ? lastError.message : 'unknown'}`);
  }

  /** Where libjuice listens and the connection's ICE password (from its local description). */
  setLocal(target: { address: string; port: number }, password: string): void {
    this.#target = target;
    this.#password = password;
  }

  #fromOutside(msg: Buffer, address: string, port: number): void {
    if (this.#closed || !this.#target || !this.#password) return;
    const key = `${address}:${port}`;
    let peer = this.#peers.get(key);
    if (stunType(msg) === BINDING_REQUEST) {
      if (!verifyIntegrity(msg, this.#password)) return;
      // Only checks libjuice would refuse come this way; every other browser is answered at
      // libjuice's own port, and its checks here go unanswered (no path, no cost).
      if (!repairRelayedCheck(msg, this.#password, FORWARDED_CHECK_PRIORITY) && !peer) return;
      if (!peer) peer = this.#addPeer(key, address, port);
    }
    if (!peer) return;
    peer.lastSeen = performance.now();
    peer.inner.send(msg, this.#target.port, this.#target.address);
  }

  #addPeer(key: string, address: string, port: number): Peer | undefined {
    if (this.#peers.size >= MAX_PEERS) {
      const oldest = [...this.#peers.entries()].sort((a, b) => a[1].lastSeen - b[1].lastSeen)[0]!;
      this.#dropPeer(oldest[0]);
    }
    const inner = createSocket({ type: 'udp4' });
    const peer: Peer = { inner, address, port, lastSeen: performance.now() };
    inner.on('message', (msg) => {
      if (this.#closed) return;
      if (this.#password) rewriteMappedAddress(msg, this.#password, address, port);
      peer.lastSeen = performance.now();
      this.#socket.send(msg, port, address);
    });
    inner.on('error', () => this.#dropPeer(key));
    // Loopback: it talks only to libjuice on this machine, so it needs no port of MEDIA_PORTS.
    // Sends before the bind completes are queued by Node.
    inner.bind({ port: 0, address: '127.0.0.1' });
    this.#peers.set(key, peer);
    return peer;
  }

  #dropPeer(key: string): void {
    const peer = this.#peers.get(key);
    if (!peer) return;
    this.#peers.delete(key);
    try {
      peer.inner.close();
    } catch {
      // already closed
    }
  }

  #expire(): void {
    const now = performance.now();
    for (const [key, peer] of this.#peers) if (now - peer.lastSeen > IDLE_MS) this.#dropPeer(key);
  }

  /** Paths open now (for tests and diagnostics). */
  get peers(): number {
    return this.#peers.size;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const key of [...this.#peers.keys()]) this.#dropPeer(key);
    try {
      this.#socket.close();
    } catch {
      // already closed
    }
  }
}
