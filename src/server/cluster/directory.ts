/**
 * The cluster's shared view, kept in Redis: which nodes are alive and how loaded they
 * are, which node each call lives on, and which call a resume token belongs to.
 *
 * - `linkcall:node:<id>`: the node's JSON info, written every second with a 3-second
 *   expiry; a node whose key expired is dead.
 * - `linkcall:load`: sorted set of live nodes by (load + 1) ÷ capacity (placement picks the lowest).
 * - `linkcall:room:<linkId>`: the home node of a call; kept fresh by that node while the call lives.
 * - `linkcall:resume:<sha256(token)>`: the link a resume token belongs to (hashed: the
 *   token itself is a bearer secret).
 */
import type { ReturningParticipant } from '../rooms/room.js';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';

export interface NodeInfo {
  id: string;
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
}

export const HEARTBEAT_MS = 1000;
/** A node missing this many heartbeats in a row counts as dead. */
const NODE_TTL_MS = 3 * HEARTBEAT_MS;
/** A call's home record outlives its last refresh by this much (refreshed every heartbeat). */
const ROOM_TTL_MS = 30_000;
const RESUME_TTL_MS = 12 * 3600_000;
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

  /**
   * The call a resume token belongs to and, once admitted, who its participant is
   * (id, role, sealed card, admission time: what another node needs to take it back
   * if this call's node is lost; the card stays sealed).
   */
  async rememberResumeToken(token: string, linkId: string, who?: ReturningParticipant): Promise<void> {
    await this.redis.set(PREFIX + 'resume:' + tokenKey(token), JSON.stringify({ linkId, who }), 'PX', RESUME_TTL_MS);
  }

  async linkOfResumeToken(token: string): Promise<string | undefined> {
    return (await this.resumeRecord(token))?.linkId;
  }

  /** Who an admitted participant was, for a node adopting its call (see Room.adopt). */
  async participantOfResumeToken(token: string): Promise<(ReturningParticipant & { linkId: string }) | undefined> {
    const record = await this.resumeRecord(token);
    return record?.who ? { ...record.who, linkId: record.linkId } : undefined;
  }

  private async resumeRecord(token: string): Promise<{ linkId: string; who?: ReturningParticipant } | undefined> {
    const raw = await this.redis.get(PREFIX + 'resume:' + tokenKey(token));
    if (!raw) return undefined;
    try {
      return JSON.parse(raw) as { linkId: string; who?: ReturningParticipant };
    } catch {
      return undefined;
    }
  }

  /** Leave the cluster: other nodes stop sending calls here at once. */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
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

function tokenKey(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
