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
import type { Rooms, RoomsEvents } from '../rooms/rooms.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ErrorCode } from '../../protocol/errors.js';
import { linkId } from '../../protocol/ids.js';
import type { ReturningParticipant, Room } from '../rooms/room.js';
import { ClusterDirectory, type NodeInfo } from './directory.js';
import { relay, relayProof, RELAY_HEADER, verifyRelayProof } from './relay.js';

type Early = [Buffer, boolean][];
/** A participant another node may take back (Room.adopt), with the call instance it was in. */
export type RecoveredParticipant = ReturningParticipant & { linkId: string; callId: string };
/** How long a resume waits for a call's silent home node to be declared dead (its key's expiry, and a margin). */
const NODE_GONE_WAIT_MS = 4000;
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
          callIds: all.map((r) => r.callId),
        };
      },
      log,
    );
    this.keepResumeRecords();
  }

  async start(url: string): Promise<void> {
    await this.directory.start(url);
    // A deleted link's call ends on every node, not only on the one that took the DELETE.
    await this.directory.onLinkDeleted((linkId) => this.rooms.closeRoom(linkId, 'link_deleted'));
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
   * Keep the directory's resume records from the rooms' own events: a token is filed under the
   * link and call of the room that issued it, and ends when its participant's time there ends.
   */
  private keepResumeRecords(): void {
    const written = (event: keyof RoomsEvents, write: Promise<unknown>) =>
      void write.catch(() => this.log.warn({ event }, 'cluster directory write failed'));
    const call = (room: Room) => ({ linkId: room.linkId, callId: room.callId });
    this.rooms.on('opened', (room) => written('opened', this.directory.callStarted(room.callId)));
    this.rooms.on('closed', (room) => written('closed', this.directory.callEnded(room.callId)));
    this.rooms.on('knocked', (room, token) => written('knocked', this.directory.rememberResumeToken(token, call(room))));
    this.rooms.on('admitted', (room, token, who) => written('admitted', this.directory.rememberResumeToken(token, { ...call(room), who })));
    this.rooms.on('ended', (room, token, code) => written('ended', this.directory.endResumeToken(token, { ...call(room), ended: code })));
  }

  /**
   * A resume whose token no room here holds: who its participant was, if it may be taken back
   * here — it was admitted, its time in the call has not ended, and its call is either already
   * here (moved from a node that is gone) or lived on a node that is gone, within ROOM_TTL. A
   * token that ended says why.
   */
  async recoverParticipant(token: string): Promise<RecoveredParticipant | { ended: ErrorCode } | undefined> {
    const record = await this.directory.resumeRecord(token);
    if (record?.ended) return { ended: record.ended };
    if (!record?.who) return undefined;
    const recovered = { ...record.who, linkId: record.linkId, callId: record.callId };
    const here = this.rooms.get(record.linkId);
    if (here && !here.isClosed) return here.callId === record.callId ? recovered : undefined;
    // A node that crashed is seen dead once its heartbeat key expires: wait that long at most.
    const deadline = Date.now() + NODE_GONE_WAIT_MS;
    for (;;) {
      const home = await this.directory.callHome(record.callId);
      if (!home) return undefined;
      if (!(await this.directory.alive(home))) return recovered;
      if (Date.now() >= deadline) return undefined;
      await sleep(250);
    }
  }

  /** The link was deleted: its call ends on whichever node it lives (see onLinkDeleted). */
  announceLinkDeleted(linkId: string): Promise<void> {
    return this.directory.announceLinkDeleted(linkId);
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
  if (m?.type === 'join' && typeof m.linkId === 'string' && linkId.safeParse(m.linkId).success) return { linkId: m.linkId };
  if (m?.type === 'resume' && typeof m.token === 'string' && m.token.length <= 64) return { resumeToken: m.token };
  return undefined;
}
