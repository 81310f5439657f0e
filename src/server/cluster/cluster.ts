/**
 * A linkcall node in a cluster. Any node accepts any client; a call lives on one node
 * (placed by load when it starts), and a client whose call lives elsewhere has its
 * signaling relayed there (see relay.ts). When a node dies, its heartbeat key expires
 * and the next client of each of its calls places the call on a live node.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { Config } from '../config.js';
import type { Rooms } from '../rooms/rooms.js';
import type { WsTapEvent } from '../signaling/connection.js';
import { ClusterDirectory, type NodeInfo } from './directory.js';
import { relay, relayProof, RELAY_HEADER, verifyRelayProof } from './relay.js';

type Early = [Buffer, boolean][];
type Log = { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };

/** What the first routable frame says about where the client belongs. */
type RouteKey = { linkId: string } | { resumeToken: string } | undefined;

export class Cluster {
  readonly directory: ClusterDirectory;
  readonly nodeId: string;
  private readonly secret: string;
  private readonly relays = new Set<WebSocket>();
  /** Connections relayed to another node so far (for /metrics). */
  relayedConnections = 0;

  constructor(
    config: NonNullable<Config['cluster']>,
    private readonly rooms: Rooms,
    private readonly log: Log,
  ) {
    this.nodeId = config.nodeId ?? randomBytes(6).toString('base64url');
    this.secret = config.secret;
    this.directory = new ClusterDirectory(
      config.redisUrl,
      { id: this.nodeId, capacity: config.capacity },
      () => {
        const all = [...rooms.values()];
        return {
          rooms: all.length,
          participants: all.reduce((n, r) => n + r.admittedCount + r.lobbyCount, 0),
          draining: !rooms.acceptingJoins,
          linkIds: all.map((r) => r.linkId),
        };
      },
      log,
    );
  }

  start(url: string): Promise<void> {
    return this.directory.start(url);
  }

  async stop(): Promise<void> {
    for (const socket of this.relays) socket.terminate();
    await this.directory.stop();
  }

  /** A connection another node relays to us: its proof is valid. Such a connection is never relayed again. */
  isRelayed(req: FastifyRequest): boolean {
    const proof = req.headers[RELAY_HEADER];
    const address = req.headers['x-linkcall-client-address'];
    return typeof proof === 'string' && typeof address === 'string' && verifyRelayProof(this.secret, proof, address);
  }

  /** The client's own address, also for relayed connections (rate limits are per client, not per node). */
  clientAddress(req: FastifyRequest): string {
    const address = req.headers['x-linkcall-client-address'];
    return typeof address === 'string' && this.isRelayed(req) ? address : req.ip;
  }

  /**
   * Hold the client's frames until one says which call it is for (join: the link;
   * resume: the link its token was issued for), answering keepalive pings meanwhile;
   * then serve it here or relay it to the call's home node.
   */
  route(socket: WebSocket, req: FastifyRequest, serveHere: (early: Early) => void): void {
    const early: Early = [];
    let decided = false;
    const onFrame = (data: Buffer, isBinary: boolean) => {
      if (decided) return void early.push([data, isBinary]);
      const message = parse(data, isBinary);
      if (message?.type === 'ping') {
        socket.send(JSON.stringify({ type: 'pong', ...(typeof message.seq === 'number' ? { seq: message.seq } : {}) }));
        return;
      }
      early.push([data, isBinary]);
      decided = true;
      void this.place(routeKey(message))
        .catch(() => undefined)
        .then(async (home) => {
          socket.off('message', onFrame);
          if (socket.readyState !== socket.OPEN) return;
          if (!home || home.id === this.nodeId) return serveHere(early);
          await this.relayTo(socket, req, home, early, routeKey(message), serveHere);
        });
    };
    socket.on('message', onFrame);
  }

  /** The node this call lives on (undefined: serve it here, e.g. Redis is away). */
  private async place(key: RouteKey, avoid?: string): Promise<NodeInfo | undefined> {
    if (!key) return undefined;
    const linkId = 'linkId' in key ? key.linkId : await this.directory.linkOfResumeToken(key.resumeToken);
    if (!linkId) return undefined;
    // A call already running here stays here (also while this node drains).
    if (!avoid && this.rooms.get(linkId)) return undefined;
    return this.directory.homeOf(linkId, avoid);
  }

  private async relayTo(
    socket: WebSocket,
    req: FastifyRequest,
    home: NodeInfo,
    early: Early,
    key: RouteKey,
    serveHere: (early: Early) => void,
  ): Promise<void> {
    const address = this.clientAddress(req);
    const headers: Record<string, string> = {
      [RELAY_HEADER]: relayProof(this.secret, this.nodeId, address),
      'x-linkcall-client-address': address,
    };
    if (req.headers.cookie) headers.cookie = req.headers.cookie;
    this.relays.add(socket);
    socket.once('close', () => this.relays.delete(socket));
    if (await relay(socket, { url: home.url, headers }, early)) {
      this.relayedConnections++;
      return;
    }
    // The home node is unreachable (it died; its heartbeat has not expired yet): place the call anew.
    this.log.warn({ node: home.id }, 'cluster node unreachable; placing its call elsewhere');
    const next = await this.place(key, home.id).catch(() => undefined);
    if (socket.readyState !== socket.OPEN) return;
    if (!next || next.id === this.nodeId) {
      this.relays.delete(socket);
      return serveHere(early);
    }
    if (!(await relay(socket, { url: next.url, headers }, early))) socket.terminate();
    else this.relayedConnections++;
  }

  /**
   * Watches one connection's frames (the app's per-connection tap) to remember which
   * link its resume token belongs to, so any node can route the resume later.
   */
  observe(next?: (event: WsTapEvent) => void): (event: WsTapEvent) => void {
    let linkId: string | undefined;
    let token: string | undefined;
    return (event) => {
      next?.(event);
      if (event.kind === 'ws-in' && !linkId && !event.isBinary && event.data.length < 4096) {
        const m = parse(event.data, false);
        if (m?.type === 'join' && typeof m.linkId === 'string') linkId = m.linkId;
        // A resume keeps the token it came with (the participant may be admitted again elsewhere).
        if (m?.type === 'resume' && typeof m.token === 'string') {
          token = m.token;
          void this.directory.linkOfResumeToken(token).then((l) => (linkId ??= l), () => undefined);
        }
      } else if (event.kind === 'ws-out' && event.data.startsWith('{"type":"resumable"')) {
        const m = parse(Buffer.from(event.data), false);
        if (typeof m?.token === 'string' && linkId) {
          token = m.token;
          this.directory.rememberResumeToken(token, linkId).catch(() => undefined);
        }
      } else if (event.kind === 'ws-out' && token && linkId && event.data.startsWith('{"type":"joined"')) {
        const you = (parse(Buffer.from(event.data), false)?.you ?? undefined) as Record<string, unknown> | undefined;
        if (you && typeof you.id === 'string' && typeof you.card === 'string' && (you.role === 'host' || you.role === 'guest') && typeof you.since === 'number') {
          const who = { participantId: you.id, role: you.role, card: you.card, since: you.since } as const;
          this.directory.rememberResumeToken(token, linkId, who).catch(() => undefined);
        }
      }
    };
  }
}

function parse(data: Buffer, isBinary: boolean): Record<string, unknown> | undefined {
  if (isBinary || data.length > 64 * 1024) return undefined;
  try {
    const value: unknown = JSON.parse(data.toString('utf8'));
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function routeKey(m: Record<string, unknown> | undefined): RouteKey {
  if (m?.type === 'join' && typeof m.linkId === 'string' && /^[A-Za-z0-9_-]{22}$/.test(m.linkId)) return { linkId: m.linkId };
  if (m?.type === 'resume' && typeof m.token === 'string' && m.token.length <= 64) return { resumeToken: m.token };
  return undefined;
}
