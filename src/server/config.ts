/** Configuration from the environment, read once at start. */
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';

const env = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('127.0.0.1'),
  DATA_DIR: z.string().default('./data'),
  PUBLIC_URL: z.string().url().optional(),
  /** Address the SFU's ICE binds to and announces (e.g. the machine's public address). */
  MEDIA_ADDRESS: z.string().default('127.0.0.1'),
  /**
   * UDP ports every media socket of the SFU uses, e.g. `40000-40999` (one per browser connection,
   * two when TURN is configured). Default: any free port.
   */
  MEDIA_PORTS: z
    .string()
    .regex(/^\d{1,5}-\d{1,5}$/, 'MEDIA_PORTS must be a range such as 40000-40999')
    .transform((s) => s.split('-').map(Number) as [number, number])
    .refine(([begin, end]) => begin >= 1024 && end <= 65535 && begin <= end, 'MEDIA_PORTS must lie within 1024-65535, lowest port first')
    .optional(),
  /** The public IPv4 address browsers send media to, when MEDIA_ADDRESS is a private one behind NAT. */
  MEDIA_ANNOUNCED_ADDRESS: z.ipv4({ message: 'MEDIA_ANNOUNCED_ADDRESS must be an IPv4 address such as 203.0.113.7' }).optional(),
  /**
   * SFU worker processes: `0` runs calls' media in the server process; a number, or `auto`
   * (one per core), starts that many, each call pinned to one (docs/MEDIA.md).
   */
  MEDIA_WORKERS: z.union([z.literal('auto'), z.coerce.number().int().min(0).max(256)]).default(0),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'silent']).default('info'),
  /**
   * Whether to believe X-Forwarded-For/-Proto: `true`, `false`, a hop count, or
   * comma-separated proxy addresses/CIDRs. Default: true when PUBLIC_URL is https.
   */
  TRUST_PROXY: z.string().optional(),
  /** On SIGTERM, how long calls may go on before the server ends them and exits. */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(3600_000).default(20_000),
  /** PostgreSQL instead of the SQLite file, e.g. postgres://linkcall@db.internal/linkcall. */
  DATABASE_URL: z.string().optional(),
  /** Redis for a cluster of nodes (room directory, node load); unset = a single node. */
  REDIS_URL: z.string().optional(),
  /** This node's name in the cluster (default: a random one per start). */
  NODE_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).optional(),
  /** Where the other nodes reach this one (default http://HOST:PORT; needed when HOST is 0.0.0.0). */
  NODE_URL: z.string().url().optional(),
  /** Shared by the cluster's nodes: authenticates node-to-node signaling relays and resume tokens. */
  CLUSTER_SECRET: z.string().min(16).optional(),
  /** This node's share of new calls relative to the others (e.g. 2 for a machine twice as big). */
  NODE_CAPACITY: z.coerce.number().positive().default(1),
  /** Comma-separated TURN/STUN URLs handed to browsers, e.g. turn:turn.example.org:3478?transport=udp. */
  TURN_URLS: z.string().optional(),
  /** coturn's static-auth-secret (use-auth-secret): browsers get short-lived credentials made from it. */
  TURN_SECRET: z.string().min(16).optional(),
  /** How long a browser's TURN credentials stay valid, in seconds. */
  TURN_CREDENTIAL_TTL: z.coerce.number().int().min(60).max(7 * 24 * 3600).default(6 * 3600),
  /** Knocks one link accepts per minute (a 33-person call assembling at once needs 32). */
  KNOCKS_PER_LINK_PER_MINUTE: z.coerce.number().int().min(1).max(100_000).optional(),
  /** Knocks one address may make per minute, all links together (raise it for guests behind one office NAT). */
  KNOCKS_PER_ADDRESS_PER_MINUTE: z.coerce.number().int().min(1).max(100_000).optional(),
  /** Signaling WebSockets open at once from one address (an IPv6 /64 counts as one address). */
  WS_CONNECTIONS_PER_ADDRESS: z.coerce.number().int().min(1).max(1_000_000).optional(),
  /** 'relay' makes browsers send media only through TURN (hides their addresses; used by tests). */
  ICE_TRANSPORT_POLICY: z.enum(['all', 'relay']).default('all'),
});

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** Origin users reach the server at; defaults to http://localhost:PORT. */
  publicUrl?: string;
  mediaAddress: string;
  /** MEDIA_PORTS: the UDP range of the SFU's sockets. */
  mediaPorts?: { begin: number; end: number };
  /** MEDIA_ANNOUNCED_ADDRESS: put into the SFU's candidates instead of mediaAddress. */
  mediaAnnouncedAddress?: string;
  /** Media worker processes; 0: the SFU runs in this process. */
  mediaWorkers: number;
  logLevel: string;
  /** Fastify's trustProxy: which X-Forwarded-* headers to believe. */
  trustProxy: boolean | number | string[];
  shutdownGraceMs: number;
  /** Directory of the built browser app. */
  publicDir: string;
  databaseUrl?: string;
  cluster?: { redisUrl: string; nodeId?: string; nodeUrl?: string; secret: string; capacity: number };
  turn?: { urls: string[]; secret: string; ttlSeconds: number };
  iceTransportPolicy: 'all' | 'relay';
  /** Knock rate limits set by the operator (the rest keep their defaults). */
  knockLimits: { perLinkPerMinute?: number; perAddressPerMinute?: number };
  /** Signaling connections one address may hold open, when the operator set it. */
  wsConnectionsPerAddress?: number;
}

export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const e = env.parse(source);
  const publicUrl = e.PUBLIC_URL?.replace(/\/$/, '');
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: resolve(e.DATA_DIR),
    publicUrl,
    mediaAddress: e.MEDIA_ADDRESS,
    mediaPorts: e.MEDIA_PORTS ? { begin: e.MEDIA_PORTS[0], end: e.MEDIA_PORTS[1] } : undefined,
    mediaAnnouncedAddress: e.MEDIA_ANNOUNCED_ADDRESS,
    mediaWorkers: e.MEDIA_WORKERS === 'auto' ? availableParallelism() : e.MEDIA_WORKERS,
    logLevel: e.LOG_LEVEL,
    trustProxy: parseTrustProxy(e.TRUST_PROXY, publicUrl?.startsWith('https://') ?? false),
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    publicDir: resolve(import.meta.dirname, '../../dist/public'),
    databaseUrl: e.DATABASE_URL,
    cluster: clusterConfig(e),
    turn: turnConfig(e),
    iceTransportPolicy: e.ICE_TRANSPORT_POLICY,
    knockLimits: { perLinkPerMinute: e.KNOCKS_PER_LINK_PER_MINUTE, perAddressPerMinute: e.KNOCKS_PER_ADDRESS_PER_MINUTE },
    wsConnectionsPerAddress: e.WS_CONNECTIONS_PER_ADDRESS,
  };
}

function clusterConfig(e: z.infer<typeof env>): Config['cluster'] {
  if (!e.REDIS_URL) return undefined;
  if (!e.CLUSTER_SECRET) throw new Error('REDIS_URL needs CLUSTER_SECRET (the same on every node, at least 16 characters)');
  if (!e.DATABASE_URL) throw new Error('REDIS_URL needs DATABASE_URL: the nodes of a cluster share one PostgreSQL database');
  return { redisUrl: e.REDIS_URL, nodeId: e.NODE_ID, nodeUrl: e.NODE_URL?.replace(/\/$/, ''), secret: e.CLUSTER_SECRET, capacity: e.NODE_CAPACITY };
}

function turnConfig(e: z.infer<typeof env>): Config['turn'] {
  const urls = (e.TURN_URLS ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  if (urls.length === 0) return undefined;
  if (!e.TURN_SECRET && urls.some((u) => /^turns?:/.test(u))) throw new Error('TURN_URLS needs TURN_SECRET (coturn\'s static-auth-secret)');
  return { urls, secret: e.TURN_SECRET ?? '', ttlSeconds: e.TURN_CREDENTIAL_TTL };
}

function parseTrustProxy(raw: string | undefined, fallback: boolean): boolean | number | string[] {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = raw.trim();
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^\d+$/.test(value)) return Number(value);
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Where the SFU's media sockets bind, what they announce, and whether relayed browsers get an entrance (with TURN). */
export function mediaNetwork(config: Pick<Config, 'mediaAddress' | 'mediaPorts' | 'mediaAnnouncedAddress' | 'turn'>): MediaNetworkOptions {
  return {
    bindAddress: config.mediaAddress,
    ...(config.mediaPorts ? { portRangeBegin: config.mediaPorts.begin, portRangeEnd: config.mediaPorts.end } : {}),
    ...(config.mediaAnnouncedAddress ? { announcedAddress: config.mediaAnnouncedAddress } : {}),
    relayEntrance: config.turn !== undefined,
  };
}

/** The Router options mediaNetwork() fills (plain data: they also travel to media workers). */
export interface MediaNetworkOptions {
  bindAddress?: string;
  portRangeBegin?: number;
  portRangeEnd?: number;
  announcedAddress?: string;
  relayEntrance?: boolean;
}
