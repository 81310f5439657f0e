/** Assembles the server: HTTP API, pages, signaling and rooms, over a Store. */
import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline, Transform } from 'node:stream';
import { ERRORS, LinkcallError } from '../protocol/errors.js';
import { MAX_FRAME_BYTES } from '../protocol/messages.js';
import type { Config } from './config.js';
import { registerAuth, sessionAccount, SESSION_COOKIE } from './http/auth.js';
import { linkInfo, registerLinks } from './http/links.js';
import { RateLimiter } from './http/rate-limit.js';
import { originAllowed, registerSecurityHeaders } from './http/security.js';
import { CallMedia } from './rooms/call-media.js';
import type { RoomLimits } from './rooms/room.js';
import { Rooms } from './rooms/rooms.js';
import { Connection, type WsTapEvent } from './signaling/connection.js';
import type { Store } from './store/store.js';

/** Attempts allowed per window; defaults suit a public server, tests raise some. */
export interface RateLimits {
  signUpsPerAddressPerHour: number;
  signInsPerAddressPerMinute: number;
  linksPerAccountPerHour: number;
  knocksPerLinkPerMinute: number;
  knocksPerAddressPerMinute: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = {
  signUpsPerAddressPerHour: 5,
  signInsPerAddressPerMinute: 10,
  linksPerAccountPerHour: 30,
  knocksPerLinkPerMinute: 30,
  knocksPerAddressPerMinute: 20,
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
}

export async function buildApp({ config, store, roomLimits, rateLimits, logger, tap }: AppOptions): Promise<App> {
  const limits = { ...DEFAULT_RATE_LIMITS, ...rateLimits };
  const tls = config.publicUrl?.startsWith('https://') ?? false;
  const http = Fastify({
    logger: logger ?? { level: config.logLevel },
    disableRequestLogging: true,
    bodyLimit: 16 * 1024,
    trustProxy: tls,
  });
  const rooms = new Rooms(() => new CallMedia({ bindAddress: config.mediaAddress }), roomLimits);

  http.setErrorHandler((err, req, reply) => {
    if (err instanceof LinkcallError) {
      return reply.code(err.status).send({ error: err.code, message: ERRORS[err.code].message });
    }
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      const code = status === 413 ? 'message_too_large' : 'bad_request';
      return reply.code(status).send({ error: code, message: ERRORS[code].message });
    }
    req.log.error({ err: { name: (err as Error).name } }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: ERRORS.internal.message });
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

  registerSecurityHeaders(http, tls);
  await http.register(cookie);
  await http.register(websocket, { options: { maxPayload: 4 * MAX_FRAME_BYTES } });

  registerAuth(http, {
    store,
    secureCookies: tls,
    signUpLimit: new RateLimiter(limits.signUpsPerAddressPerHour, 3600_000),
    signInLimit: new RateLimiter(limits.signInsPerAddressPerMinute, 60_000),
  });
  registerLinks(http, { store, rooms, createLimit: new RateLimiter(limits.linksPerAccountPerHour, 3600_000) });

  http.get('/healthz', async () => ({ ok: true, rooms: rooms.size }));

  const knocksPerLink = new RateLimiter(limits.knocksPerLinkPerMinute, 60_000);
  const knocksPerAddress = new RateLimiter(limits.knocksPerAddressPerMinute, 60_000);
  http.addHook('onClose', async () => {
    knocksPerLink.close();
    knocksPerAddress.close();
    rooms.closeAll('server_shutdown');
  });

  http.get(
    '/ws',
    {
      websocket: true,
      preValidation: async (req, reply) => {
        if (!originAllowed(req.headers.origin, req.headers.host, config.publicUrl)) {
          return reply.code(403).send({ error: 'not_allowed', message: ERRORS.not_allowed.message });
        }
      },
    },
    async (socket, req) => {
      // Resolve the session before listening, and buffer frames that arrive meanwhile.
      const early: [Buffer, boolean][] = [];
      const buffer = (data: Buffer, isBinary: boolean) => early.push([data, isBinary]);
      socket.on('message', buffer);
      const account = await sessionAccount(store, req.cookies[SESSION_COOKIE]).catch(() => undefined);
      socket.off('message', buffer);
      const connection = new Connection(
        socket,
        { store, rooms, knocksPerLink, knocksPerAddress, log: req.log, tap },
        account,
        req.ip,
      );
      for (const [data, isBinary] of early) socket.emit('message', data, isBinary);
      void connection;
    },
  );

  // The browser app: a single page, served with the status that fits the URL.
  const indexFile = join(config.publicDir, 'index.html');
  if (existsSync(indexFile)) {
    const indexHtml = readFileSync(indexFile, 'utf8');
    await http.register(fastifyStatic, { root: config.publicDir, index: false, wildcard: false, prefix: '/' });
    const page = (status: number) => (_req: unknown, reply: import('fastify').FastifyReply) =>
      reply.code(status).type('text/html; charset=utf-8').header('Cache-Control', 'no-store').send(indexHtml);
    http.get('/', page(200));
    http.get<{ Params: { id: string } }>('/join/:id', async (req, reply) => {
      try {
        await linkInfo(store, req.params.id);
        return page(200)(req, reply);
      } catch (err) {
        return page(err instanceof LinkcallError ? err.status : 500)(req, reply);
      }
    });
  }
  http.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/') || !existsSync(indexFile)) {
      return reply.code(404).send({ error: 'bad_request', message: 'Not found.' });
    }
    return reply.code(404).type('text/html; charset=utf-8').send(readFileSync(indexFile, 'utf8'));
  });

  return { http, rooms };
}
