/**
 * The cluster's shared view, kept in Redis: which nodes are alive and how loaded they
 * are, which node each call lives on, and which call a resume token belongs to.
 *
 * - `linkcall:node:<id>`: the node's JSON info, written every second with a 3-second
 *   expiry; a node whose key expired is dead.
 * - `linkcall:load`: sorted set of live nodes by (load + 1) ÷ capacity (placement picks the lowest).
 * - `linkcall:room:<linkId>`: the home node of a call; kept fresh by that node while the call lives.
 * - `linkcall:call:<callId>`: the node process (id and instance) a call instance lives on;
 *   kept fresh by that process while the call lives, deleted when it ends.
 * - `linkcall:resume:<sha256(token)>`: the link and call instance a resume token belongs to,
 *   and who its participant is once admitted (hashed: the token itself is a bearer secret).
 *   Written by the node of the room that issued the token, from that room's events, and
 *   ended (a short tombstone saying why) when the participant's time in the call ends.
 */
import type { ErrorCode } from '../../protocol/errors.js';
import type { ReturningParticipant } from '../rooms/room.js';
import { createHash, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export interface NodeInfo {
  id: string;
  /** This run of the process: a node restarted under the same id is another instance. */
  instance?: string;
  /** Where other nodes reach this node's HTTP and WebSocket endpoints. */
  url: string;
  capacity: number;
  /** Shutting down: its calls go on, no new calls start there. */
  draining: boolean;
  rooms: number;
  participants: number;
  /** Share of one core the process used over the last heartbeat (1 = one core busy). */
  cpu: number;
  at: number;
}

export interface NodeLoad {
  rooms: number;
  participants: number;
  draining: boolean;
  /** Link ids of the calls that live here. */
  linkIds: string[];
  /** Call instance ids of the calls that live here. */
  callIds?: string[];
}

/** What a resume token stands for (see the key layout above). */
export interface ResumeRecord {
  linkId: string;
  callId: string;
  /** Set once its participant is admitted. */
  who?: ReturningParticipant;
  /** Set when its participant's time in the call is over: why. */
  ended?: ErrorCode;
}

/** Where a call instance lives: a node, in one run of its process. */
export interface CallHome {
  node: string;
  instance: string;
}

export const HEARTBEAT_MS = 1000;
/** A node missing this many heartbeats in a row counts as dead. */
const NODE_TTL_MS = 3 * HEARTBEAT_MS;
/** A call's home record outlives its last refresh by this much (refreshed every heartbeat). */
const ROOM_TTL_MS = 30_000;
/** A bound on a record whose call's node died before it could end it (the call key decides sooner). */
const RESUME_TTL_MS = 12 * 3600_000;
/** How long an ended token's record says why (for a resume that comes late). */
const ENDED_TTL_MS = 120_000;
/** Delete a call's key only if it still names this process (the call may have moved on). */
const DELETE_IF = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const PREFIX = 'linkcall:';

/**
 * Find the call's live home, or place it on the least-loaded live node that is not
 * draining (and not `avoid`, a node just found unreachable), atomically.
 * KEYS: room key, load set. ARGV: node key prefix, room TTL, avoid.
 */
const PLACE = `
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[3] and redis.call('EXISTS', ARGV[1] .. current) == 1 then return current end
local nodes = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(nodes) do
  local raw = redis.call('GET', ARGV[1] .. id)
  if not raw then
    redis.call('ZREM', KEYS[2], id)
  elseif id ~= ARGV[3] then
    local info = cjson.decode(raw)
    if not info.draining then
      redis.call('SET', KEYS[1], id, 'PX', ARGV[2])
      redis.call('ZINCRBY', KEYS[2], 1 / info.capacity, id)
      return id
    end
  end
end
return false
`;

export class ClusterDirectory {
  readonly redis: Redis;
  private heartbeat?: NodeJS.Timeout;
  private lastCpu = process.cpuUsage();
  private lastBeat = performance.now();
  private registered = false;
  /** Subscribed to node-to-node notices (a deleted link), once onLinkDeleted is called. */
  private subscriber?: Redis;
  /** This run of the node (see NodeInfo.instance). */
  readonly instance = randomBytes(9).toString('base64url');

  constructor(
    redisUrl: string,
    private readonly self: { id: string; capacity: number },
    private readonly load: () => NodeLoad,
    private readonly log: { warn(obj: object, msg: string): void },
  ) {
    // Commands fail fast while Redis is away (routing then falls back to this node) instead of queueing.
    this.redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
    this.redis.on('error', () => {});
    this.redis.defineCommand('linkcallPlace', { numberOfKeys: 2, lua: PLACE });
    this.redis.defineCommand('linkcallDeleteIf', { numberOfKeys: 1, lua: DELETE_IF });
  }

  /** Connect and start heartbeats; rejects if Redis cannot be reached. */
  async start(url: string): Promise<void> {
    this.url = url;
    await this.redis.connect();
    await this.beat();
    this.heartbeat = setInterval(() => {
      this.beat().catch(() => this.log.warn({}, 'cluster heartbeat failed'));
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private url = '';

  get nodeId(): string {
    return this.self.id;
  }

  /** Registered and Redis answering (for /readyz). */
  async ready(): Promise<boolean> {
    if (!this.registered || this.redis.status !== 'ready') return false;
    return (await this.redis.exists(PREFIX + 'node:' + this.self.id)) === 1;
  }

  private async beat(): Promise<void> {
    const load = this.load();
    const now = performance.now();
    const cpu = process.cpuUsage(this.lastCpu);
    const share = (cpu.user + cpu.system) / 1000 / Math.max(1, now - this.lastBeat);
    this.lastCpu = process.cpuUsage();
    this.lastBeat = now;
    const info: NodeInfo = {
      id: this.self.id,
      instance: this.instance,
      url: this.url,
      capacity: this.self.capacity,
      draining: load.draining,
      rooms: load.rooms,
      participants: load.participants,
      cpu: Math.round(share * 1000) / 1000,
      at: Date.now(),
    };
    const batch = this.redis
      .multi()
      .set(PREFIX + 'node:' + this.self.id, JSON.stringify(info), 'PX', NODE_TTL_MS)
      // What one more call would weigh here: with no load at all, the bigger node still wins.
      .zadd(PREFIX + 'load', (load.rooms + load.participants + 1) / this.self.capacity, this.self.id);
    for (const linkId of load.linkIds) batch.set(PREFIX + 'room:' + linkId, this.self.id, 'PX', ROOM_TTL_MS);
    for (const callId of load.callIds ?? []) batch.set(PREFIX + 'call:' + callId, this.home(), 'PX', ROOM_TTL_MS);
    await batch.exec();
    this.registered = true;
  }

  /** The node a call lives on, placing it when it has none (or its home is dead). */
  async homeOf(linkId: string, avoid?: string): Promise<NodeInfo | undefined> {
    const id = (await (this.redis as unknown as { linkcallPlace(...args: (string | number)[]): Promise<string | null> }).linkcallPlace(
      PREFIX + 'room:' + linkId,
      PREFIX + 'load',
      PREFIX + 'node:',
      ROOM_TTL_MS,
      avoid ?? '',
    )) as string | null;
    if (!id) return undefined;
    return this.node(id);
  }

  async node(id: string): Promise<NodeInfo | undefined> {
    const raw = await this.redis.get(PREFIX + 'node:' + id);
    return raw ? (JSON.parse(raw) as NodeInfo) : undefined;
  }

  /** Every live node. */
  async nodes(): Promise<NodeInfo[]> {
    const ids = await this.redis.zrange(PREFIX + 'load', 0, -1);
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(...ids.map((id) => PREFIX + 'node:' + id));
    return raws.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as NodeInfo);
  }

  private home(): string {
    return JSON.stringify({ node: this.self.id, instance: this.instance } satisfies CallHome);
  }

  /** A call instance now lives in this process. */
  async callStarted(callId: string): Promise<void> {
    await this.redis.set(PREFIX + 'call:' + callId, this.home(), 'PX', ROOM_TTL_MS);
  }

  /** A call instance that lived in this process is over. */
  async callEnded(callId: string): Promise<void> {
    await (this.redis as unknown as { linkcallDeleteIf(key: string, value: string): Promise<number> }).linkcallDeleteIf(PREFIX + 'call:' + callId, this.home());
  }

  /** Where a call instance lives, or lived until at most ROOM_TTL_MS ago; undefined: over, or gone longer. */
  async callHome(callId: string): Promise<CallHome | undefined> {
    return parse<CallHome>(await this.redis.get(PREFIX + 'call:' + callId));
  }

  /** Whether that run of that node is alive (a node restarted under the same id is not the same run). */
  async alive(home: CallHome): Promise<boolean> {
    const info = await this.node(home.node);
    return info !== undefined && info.instance === home.instance;
  }

  /**
   * What a resume token stands for, as the room that issued it says: its link and call and, once
   * admitted, who its participant is (id, role, sealed card, admission time: what another node
   * needs to take it back if the call's node is lost; the card stays sealed).
   */
  async rememberResumeToken(token: string, record: Omit<ResumeRecord, 'ended'>): Promise<void> {
    await this.redis.set(PREFIX + 'resume:' + tokenKey(token), JSON.stringify(record), 'PX', RESUME_TTL_MS);
  }

  /** The participant's time in the call is over: its token stands for nothing but why, briefly. */
  async endResumeToken(token: string, record: { linkId: string; callId: string; ended: ErrorCode }): Promise<void> {
    await this.redis.set(PREFIX + 'resume:' + tokenKey(token), JSON.stringify(record), 'PX', ENDED_TTL_MS);
  }

  async linkOfResumeToken(token: string): Promise<string | undefined> {
    return (await this.resumeRecord(token))?.linkId;
  }

  async resumeRecord(token: string): Promise<ResumeRecord | undefined> {
    return parse<ResumeRecord>(await this.redis.get(PREFIX + 'resume:' + tokenKey(token)));
  }

  /** Tell every node (this one too) that a link was deleted. */
  async announceLinkDeleted(linkId: string): Promise<void> {
    await this.redis.publish(PREFIX + 'link-deleted', linkId);
  }

  /** Hear announceLinkDeleted from any node (re-subscribed by ioredis after a lost connection). */
  async onLinkDeleted(listener: (linkId: string) => void): Promise<void> {
    this.subscriber = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.subscriber.on('error', () => {});
    this.subscriber.on('message', (channel: string, linkId: string) => {
      if (channel === PREFIX + 'link-deleted') listener(linkId);
    });
    await this.subscriber.subscribe(PREFIX + 'link-deleted');
  }

  /** Leave the cluster: other nodes stop sending calls here at once. */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    this.subscriber?.disconnect();
    if (this.redis.status === 'ready') {
      await this.redis
        .multi()
        .del(PREFIX + 'node:' + this.self.id)
        .zrem(PREFIX + 'load', this.self.id)
        .exec()
        .catch(() => undefined);
    }
    this.redis.disconnect();
  }
}

function parse<T>(raw: string | null): T | undefined {
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}

function tokenKey(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
