/** Assembles the server: HTTP API, pages, signaling and rooms, over a Store. */
import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline, Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeCodeFor, ERRORS, LinkcallError } from '../protocol/errors.js';
import { errorBody } from '../protocol/http.js';
import { MAX_FRAME_BYTES, type ServerMessage } from '../protocol/messages.js';
import { mediaNetwork, type Config } from './config.js';
import { addressKey, FailureBackoff, RateLimiter, type BackoffPolicy } from './access/rate-limit.js';
import { usableLink } from './access/usable-link.js';
import { registerAuth, sessionAccount, SESSION_COOKIE } from './http/auth.js';
import { registerHealth } from './http/health.js';
import { registerConnectionCheck } from './http/connection-check.js';
import { registerIce } from './http/ice.js';
import { registerLinks } from './http/links.js';
import { Metrics, registerMetrics } from './http/metrics.js';
import { useProtocolSchemas } from './http/schemas.js';
import { originAllowed, registerSecurityHeaders } from './http/security.js';
import type { RoomLimits } from './rooms/room.js';
import { Rooms } from './rooms/rooms.js';
import { ConnectionChecks } from './sfu/connection-checks.js';
import { InProcessSfu } from './sfu/in-process-sfu.js';
import { MediaWorkers } from './sfu/media-workers.js';
import type { Sfu } from './sfu/sfu.js';
import { Connection, type WsTapEvent } from './signaling/connection.js';
import { Cluster } from './cluster/cluster.js';
import type { Store } from './store/store.js';

/** Attempts allowed per window, and caps; defaults suit a public server, tests raise some. See docs/OPERATIONS.md. */
export interface RateLimits {
  signUpsPerAddressPerHour: number;
  signInsPerAddressPerMinute: number;
  /** Failed sign-ins for one username (existing or not), then for one address: waits that double. */
  signInBackoffPerAccount: BackoffPolicy;
  signInBackoffPerAddress: BackoffPolicy;
  linksPerAccountPerHour: number;
  /** Links one account may keep at once (a cap, not a rate). */
  maxLinksPerHost: number;
  knocksPerLinkPerMinute: number;
  knocksPerAddressPerMinute: number;
  /** Signaling messages per connection per second. */
  wsMessagesPerSecond: number;
  /** Signaling connections open at once per address (IPv6: per /64). */
  wsConnectionsPerAddress: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = {
  signUpsPerAddressPerHour: 5,
  signInsPerAddressPerMinute: 10,
  signInBackoffPerAccount: { freeFailures: 5, baseDelayMs: 1000, maxDelayMs: 5 * 60_000 },
  signInBackoffPerAddress: { freeFailures: 20, baseDelayMs: 1000, maxDelayMs: 15 * 60_000 },
  linksPerAccountPerHour: 30,
  maxLinksPerHost: 500,
  // A full call (33) assembling at once: 32 knocks within a minute.
  knocksPerLinkPerMinute: 60,
  knocksPerAddressPerMinute: 20,
  wsMessagesPerSecond: 40,
  // A household or a small office behind one NAT, each person with a tab or two.
  wsConnectionsPerAddress: 20,
};

export interface AppOptions {
  config: Config;
  store: Store;
  roomLimits?: Partial<RoomLimits>;
  rateLimits?: Partial<RateLimits>;
  logger?: boolean | object;
  /**
   * Observability hook for tests and audits: called with every HTTP request (method, URL,
   * headers, raw body) and every WebSocket frame in and out, exactly as the server sees them.
   * It never logs or stores anything itself; without it, nothing is recorded.
   */
  tap?: Tap;
}

/** What `tap` gets: one HTTP request (body: the raw bytes, after they have all arrived), or one WebSocket frame. */
export type TapEvent =
  | { kind: 'http'; method: string; url: string; headers: Record<string, string | string[] | undefined>; body: Buffer }
  | WsTapEvent;
export type Tap = (event: TapEvent) => void;

export interface App {
  http: FastifyInstance;
  rooms: Rooms;
  /** Set when REDIS_URL is: start it once listening (`cluster.start(url)`), stop it before exit. */
  cluster?: Cluster;
  /** The calls' media: in this process, or in worker processes (MEDIA_WORKERS); closed when the server closes. */
  sfu: Sfu;
  /** Set when MEDIA_WORKERS > 0: the same Sfu, seen as its worker processes. */
  mediaWorkers?: MediaWorkers;
  /**
   * Graceful shutdown: refuse new joins (`server_shutdown`), tell every connected client
   * (`shutdown`), let calls go on for at most `graceMs`, then end them and close the server.
   * Calling it again returns the same promise.
   */
  shutdown(graceMs: number): Promise<void>;
}

export async function buildApp({ config, store, roomLimits, rateLimits, logger, tap }: AppOptions): Promise<App> {
  const fromConfig: Partial<RateLimits> = {};
  if (config.knockLimits.perLinkPerMinute) fromConfig.knocksPerLinkPerMinute = config.knockLimits.perLinkPerMinute;
  if (config.knockLimits.perAddressPerMinute) fromConfig.knocksPerAddressPerMinute = config.knockLimits.perAddressPerMinute;
  if (config.wsConnectionsPerAddress) fromConfig.wsConnectionsPerAddress = config.wsConnectionsPerAddress;
  const given = Object.fromEntries(Object.entries(rateLimits ?? {}).filter(([, v]) => v !== undefined)) as Partial<RateLimits>;
  const limits: RateLimits = { ...DEFAULT_RATE_LIMITS, ...fromConfig, ...given };
  const tls = config.publicUrl?.startsWith('https://') ?? false;
  const http = Fastify({
    logger: logger ?? { level: config.logLevel },
    // No line per request: request URLs carry link ids, and a call's traffic would drown the log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 16 * 1024,
    trustProxy: typeof config.trustProxy === 'number' ? trustHops(config.trustProxy) : config.trustProxy,
  });
  // MEDIA_WORKERS > 0: each call's SFU runs in one of these child processes, else in this one.
  const mediaWorkers = config.mediaWorkers > 0
    ? new MediaWorkers({ count: config.mediaWorkers, network: mediaNetwork(config), log: http.log })
    : undefined;
  const sfu: Sfu = mediaWorkers ?? new InProcessSfu(mediaNetwork(config));
  const metrics = new Metrics(
    {
      calls: () => rooms.size,
      participants: () => [...rooms.values()].reduce((n, room) => n + room.admittedCount, 0),
      waiting: () => [...rooms.values()].reduce((n, room) => n + room.lobbyCount, 0),
      connections: () => connections.size,
    },
    sfu,
  );
  const rooms = new Rooms(() => sfu.createRoomMedia(), roomLimits, (event) => metrics.count(event));

  http.setErrorHandler((err, req, reply) => {
    if (err instanceof LinkcallError) {
      return reply.code(err.status).send(errorBody(err.code));
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      const code = status === 413 ? 'message_too_large' : 'bad_request';
      return reply.code(status).send(errorBody(code));
    }
    req.log.error({ err: { name: (err as Error).name } }, 'request failed');
    return reply.code(500).send(errorBody('internal'));
  });

  if (tap) {
    // Each request is reported once: bodyless ones (GET, HEAD, WebSocket upgrades) on arrival,
    // the others after the response, with every body byte that was read, copied on its way
    // to the parser.
    const bodies = new WeakMap<object, Buffer[]>();
    const report = (req: FastifyRequest, body: Buffer) =>
      tap({ kind: 'http', method: req.method, url: req.url, headers: { ...req.headers }, body });
    http.addHook('preParsing', async (req, _reply, payload) => {
      if (req.method === 'GET' || req.method === 'HEAD') {
        report(req, Buffer.alloc(0));
        return payload;
      }
      const chunks: Buffer[] = [];
      bodies.set(req, chunks);
      const copy = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          chunks.push(chunk);
          done(null, chunk);
        },
      });
      pipeline(payload, copy, () => {});
      return copy;
    });
    http.addHook('onResponse', async (req) => {
      const chunks = bodies.get(req);
      if (chunks) report(req, Buffer.concat(chunks));
    });
  }

  // Routes declare their shapes with protocol/http.ts's schemas; fastify validates with them.
  useProtocolSchemas(http);
  registerSecurityHeaders(http, tls, config.publicUrl);
  await http.register(cookie);
  // Frames past MAX_FRAME_BYTES get a typed `message_too_large`; past this the socket closes
  // with 1009. No per-message deflate (ws's default, stated): it costs memory per connection.
  await http.register(websocket, {
    options: { maxPayload: 4 * MAX_FRAME_BYTES, perMessageDeflate: false },
    // A client can break the WebSocket layer at will (bad UTF-8, oversized frames, resets):
    // that is routine, not a server error, so it must not fill the log.
    errorHandler: (err, socket, req) => {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && (code.startsWith('WS_ERR_') || code === 'ECONNRESET' || code === 'EPIPE')) {
        req.log.debug({ code }, 'signaling socket closed on a protocol error');
      } else {
        req.log.error({ err: { name: (err as Error)?.name, code } }, 'signaling socket failed');
      }
      socket.terminate();
    },
  });

  registerAuth(http, {
    store,
    secureCookies: tls,
    signUpLimit: new RateLimiter(limits.signUpsPerAddressPerHour, 3600_000),
    signInLimit: new RateLimiter(limits.signInsPerAddressPerMinute, 60_000),
    signInFailuresPerAccount: new FailureBackoff(limits.signInBackoffPerAccount),
    signInFailuresPerAddress: new FailureBackoff(limits.signInBackoffPerAddress),
  });
  registerLinks(http, {
    store,
    endCall: (linkId) => {
      rooms.closeRoom(linkId, 'link_deleted');
      cluster?.announceLinkDeleted(linkId).catch(() => http.log.warn({}, 'link deletion not announced to the cluster'));
    },
    createLimit: new RateLimiter(limits.linksPerAccountPerHour, 3600_000),
    maxLinksPerHost: limits.maxLinksPerHost,
  });

  registerHealth(http, {
    store,
    rooms: () => rooms.size,
    acceptingJoins: () => rooms.acceptingJoins,
    ...(config.cluster ? { cluster: () => cluster?.directory.ready() ?? Promise.resolve(false) } : {}),
  });
  registerMetrics(http, metrics);
  registerIce(http, { store, config });
  const cluster = config.cluster ? new Cluster(config.cluster, rooms, http.log) : undefined;
  http.addHook('onClose', async () => cluster?.stop());
  registerConnectionCheck(http, { config, checks: new ConnectionChecks(mediaNetwork(config)), clientAddress: (req) => cluster?.clientAddress(req) ?? req.ip });

  const knocksPerLink = new RateLimiter(limits.knocksPerLinkPerMinute, 60_000);
  const knocksPerAddress = new RateLimiter(limits.knocksPerAddressPerMinute, 60_000);
  http.addHook('onClose', async () => {
    knocksPerLink.close();
    knocksPerAddress.close();
    rooms.closeAll('server_shutdown');
    await sfu.close();
  });

  // Every open signaling socket, so a shutdown can tell each one (joined or not).
  const connections = new Map<import('ws').WebSocket, Connection>();
  let shutdownNotice: ServerMessage | undefined;
  /** Open signaling sockets per address key (addressKey), for the per-address cap. */
  const socketsPerAddress = new Map<string, number>();

  /** Count the socket against its address; false (and the socket told why, then closed) past the cap. */
  function admitSocket(socket: import('ws').WebSocket, req: FastifyRequest): boolean {
    const key = addressKey(cluster?.clientAddress(req) ?? req.ip);
    const open = socketsPerAddress.get(key) ?? 0;
    if (open >= limits.wsConnectionsPerAddress) {
      socket.send(JSON.stringify({ type: 'closed', code: 'too_many_connections', message: ERRORS.too_many_connections.message } satisfies ServerMessage));
      socket.close(closeCodeFor('too_many_connections'));
      return false;
    }
    socketsPerAddress.set(key, open + 1);
    socket.once('close', () => {
      const left = (socketsPerAddress.get(key) ?? 1) - 1;
      if (left > 0) socketsPerAddress.set(key, left);
      else socketsPerAddress.delete(key);
    });
    return true;
  }

  http.get(
    '/ws',
    {
      websocket: true,
      preValidation: async (req, reply) => {
        if (!originAllowed(req.headers.origin, req.headers.host, config.publicUrl)) {
          return reply.code(403).send(errorBody('not_allowed'));
        }
      },
    },
    async (socket, req) => {
      if (!admitSocket(socket, req)) return;
      // In a cluster, a client whose call lives on another node is relayed there (cluster/relay.ts).
      if (cluster && !cluster.isRelayed(req)) return cluster.route(socket, req, (first) => void serveSignaling(socket, req, first));
      await serveSignaling(socket, req, []);
    },
  );

  async function serveSignaling(socket: import('ws').WebSocket, req: FastifyRequest, first: [Buffer, boolean][]): Promise<void> {
    // Resolve the session before listening, and buffer frames that arrive meanwhile.
    const early: [Buffer, boolean][] = [...first];
    const buffer = (data: Buffer, isBinary: boolean) => early.push([data, isBinary]);
    socket.on('message', buffer);
    const account = await sessionAccount(store, req.cookies[SESSION_COOKIE]).catch(() => undefined);
    socket.off('message', buffer);
    const connection = new Connection(
      socket,
      { store, rooms, knocksPerLink, knocksPerAddress, messagesPerSecond: limits.wsMessagesPerSecond, log: req.log,
        tap,
        onTooSlow: () => metrics.count('too_slow'),
        recoverParticipant: cluster ? (token) => cluster.recoverParticipant(token) : undefined,
      },
      account,
      cluster?.clientAddress(req) ?? req.ip,
    );
    connections.set(socket, connection);
    socket.on('close', () => connections.delete(socket));
    if (shutdownNotice) connection.send(shutdownNotice);
    for (const [data, isBinary] of early) socket.emit('message', data, isBinary);
  }

  let shuttingDown: Promise<void> | undefined;
  let graceEnds = Infinity;
  // A second call can only shorten the grace (a second SIGTERM).
  const shutdown = (graceMs: number): Promise<void> => {
    graceEnds = Math.min(graceEnds, Date.now() + graceMs);
    return (shuttingDown ??= (async () => {
      rooms.stopJoins();
      shutdownNotice = { type: 'shutdown', message: ERRORS.server_shutdown.message, graceMs };
      for (const connection of connections.values()) connection.send(shutdownNotice);
      while (rooms.size > 0 && Date.now() < graceEnds) await sleep(Math.min(100, graceEnds - Date.now()));
      rooms.closeAll('server_shutdown');
      for (const connection of connections.values()) connection.close('server_shutdown');
      // Give close handshakes a moment; a peer that does not answer is cut.
      const closeDeadline = Date.now() + 1000;
      while (connections.size > 0 && Date.now() < closeDeadline) await sleep(20);
      for (const socket of connections.keys()) socket.terminate();
      await http.close();
    })());
  };

  // The browser app: a single page, served with the status that fits the URL.
  const indexFile = join(config.publicDir, 'index.html');
  if (existsSync(indexFile)) {
    const indexHtml = readFileSync(indexFile, 'utf8');
    await http.register(fastifyStatic, { root: config.publicDir, index: false, wildcard: false, prefix: '/' });
    const page = (status: number) => (_req: unknown, reply: import('fastify').FastifyReply) =>
      reply.code(status).type('text/html; charset=utf-8').header('Cache-Control', 'no-store').send(indexHtml);
    http.get('/', page(200));
    http.get('/check', page(200));
    http.get<{ Params: { id: string } }>('/join/:id', async (req, reply) => {
      try {
        await usableLink(store, req.params.id);
        return page(200)(req, reply);
      } catch (err) {
        return page(err instanceof LinkcallError ? err.status : 500)(req, reply);
      }
    });
  }
  http.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/') || !existsSync(indexFile)) {
      return reply.code(404).send(errorBody('not_found'));
    }
    return reply.code(404).type('text/html; charset=utf-8').send(readFileSync(indexFile, 'utf8'));
  });

  return { http, rooms, shutdown, cluster, sfu, ...(mediaWorkers ? { mediaWorkers } : {}) };
}

/** Believe the last `hops` proxies in X-Forwarded-For (Fastify's typings take no count). */
function trustHops(hops: number): (address: string, hop: number) => boolean {
  return (_address, hop) => hop < hops;
}
