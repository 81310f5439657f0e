/** A real linkcall server on a free loopback port, with its own data directory. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { CallSession } from '../../src/client/call.js';
import { SignalingClient } from '../../src/client/signaling.js';
import { deriveLinkKeys, linkFragment, newLinkSecret, signLinkInfo, type LinkKeys } from '../../src/e2ee/keys.js';
import { keyHash, newSigningKey, type SigningKey } from '../../src/e2ee/mls.js';
import { buildApp, type App, type RateLimits, type Tap } from '../../src/server/app.js';
import { loadConfig } from '../../src/server/config.js';
import type { RoomLimits } from '../../src/server/rooms/room.js';
import { SqliteStore } from '../../src/server/store/sqlite.js';

export interface TestServer {
  url: string;
  wsUrl: string;
  dataDir: string;
  app: App;
  store: SqliteStore;
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** More configuration, as environment variables (e.g. TURN_URLS). */
  env?: Record<string, string>;
  roomLimits?: Partial<RoomLimits>;
  rateLimits?: Partial<RateLimits>;
  /** Collects every server log line. */
  logs?: string[];
  /** Level for collected logs (default 'info'; 'trace' collects everything the server would ever log). */
  logLevel?: string;
  /** Sees every HTTP request and WebSocket frame (AppOptions.tap). */
  tap?: Tap;
}

/** Many hosts sign up, and many participants connect, from one loopback address in tests: those limits are raised. */
const TEST_RATE_LIMITS: Partial<RateLimits> = { signUpsPerAddressPerHour: 1000, wsConnectionsPerAddress: 1000 };

export async function startServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-test-'));
  const config = loadConfig({ ...opts.env, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info' });
  const store = new SqliteStore(join(dataDir, 'linkcall.sqlite'));
  const logs = opts.logs;
  const logger = logs
    ? { level: opts.logLevel ?? 'info', stream: { write: (line: string) => void logs.push(line) } }
    : { level: 'warn' };
  const app = await buildApp({
    config,
    store,
    roomLimits: opts.roomLimits,
    // A cap the test sets as an operator would (environment) is kept.
    rateLimits: { ...TEST_RATE_LIMITS, ...(opts.env?.WS_CONNECTIONS_PER_ADDRESS ? { wsConnectionsPerAddress: undefined } : {}), ...opts.rateLimits },
    logger,
    tap: opts.tap,
  });
  await app.http.listen({ port: 0, host: '127.0.0.1' });
  const address = app.http.server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  const url = `http://127.0.0.1:${address.port}`;
  return {
    url,
    wsUrl: `ws://127.0.0.1:${address.port}/ws`,
    dataDir,
    app,
    store,
    async close() {
      await app.http.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Sign up a host and return its session cookie. */
export async function signUp(server: Pick<TestServer, 'url'>, username: string, password = 'correct horse battery'): Promise<string> {
  const res = await fetch(`${server.url}/api/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 201) throw new Error(`sign-up failed: ${res.status} ${await res.text()}`);
  const cookie = res.headers.get('set-cookie') ?? '';
  return cookie.split(';')[0]!;
}

export interface TestLink {
  id: string;
  /** The link secret, as the host's browser would make it (never sent to the server). */
  secret: Uint8Array;
  keys: LinkKeys;
  /** The host's signing key, as the host's browser keeps it, and its hash (the link's `h=`). */
  hostKey: SigningKey;
  hostKeyHash: string;
  /** The full link, secret and host key hash in the fragment. */
  url: string;
}

/** Create a link the way the host's browser does: server id, local secret, MAC of the link's facts. */
export async function createLink(server: Pick<TestServer, 'url'>, cookie: string, name?: string, expiresAt?: number): Promise<TestLink> {
  const res = await fetch(`${server.url}/api/links`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ ...(name ? { name } : {}), ...(expiresAt ? { expiresAt } : {}) }),
  });
  if (res.status !== 201) throw new Error(`link creation failed: ${res.status}`);
  const link = (await res.json()) as { id: string; name: string; path: string };
  const secret = newLinkSecret();
  const keys = await deriveLinkKeys(secret);
  const me = (await (await fetch(`${server.url}/api/me`, { headers: { cookie } })).json()) as { username: string };
  const mac = await signLinkInfo(keys, link.id, { name: link.name, hostName: me.username });
  await fetch(`${server.url}/api/links/${link.id}/info-mac`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ mac }),
  });
  const hostKey = await newSigningKey();
  const hostKeyHash = keyHash(hostKey.publicKey);
  return { id: link.id, secret, keys, hostKey, hostKeyHash, url: `${server.url}${link.path}#${linkFragment(secret, hostKeyHash)}` };
}

/**
 * A Node participant using the same protocol library as the browser. With the owner's cookie it
 * also holds the host's signing key (as the browser that made the link does), unless `hostKey` is
 * left out of `link`.
 */
/** `joinAnswerMs`: how long the knock waits for the server's first answer (CallSession). */
export async function connectClient(
  server: Pick<TestServer, 'wsUrl'>,
  link: Pick<TestLink, 'id' | 'keys' | 'hostKeyHash'> & { hostKey?: SigningKey; approverDelayMs?: number },
  cookie?: string,
  joinAnswerMs?: number,
): Promise<{ signaling: SignalingClient; call: CallSession; raw: () => WebSocket }> {
  let socket: WebSocket | undefined;
  const signaling = new SignalingClient(server.wsUrl, (u) => {
    socket = new WebSocket(u, { headers: cookie ? { cookie } : {} });
    return socket as unknown as import('../../src/client/signaling.js').SocketLike;
  });
  const call = new CallSession(signaling, {
    linkId: link.id,
    keys: link.keys,
    hostKeyHash: link.hostKeyHash,
    hostKey: cookie ? link.hostKey : undefined,
    approverDelayMs: link.approverDelayMs,
  }, joinAnswerMs);
  await signaling.connect();
  return { signaling, call, raw: () => socket! };
}

/** Resolve when the session's state satisfies `predicate` (checked on every change). */
export function until(call: CallSession, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (predicate()) return resolve();
    const timer = setTimeout(() => {
      off();
      reject(new Error(`condition not met within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = call.onChange(() => {
      if (!predicate()) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

/** A call of two: the host enters, a guest knocks, the host approves; resolves once both share the call key. */
export async function callOfTwo(server: TestServer, link: TestLink & { approverDelayMs?: number }, hostCookie: string, names = { host: 'Ana', guest: 'Bob' }) {
  const host = await connectClient(server, link, hostCookie);
  await host.call.join(names.host);
  await until(host.call, () => host.call.phase.kind === 'in-call' && host.call.keys !== undefined);
  const guest = await connectClient(server, link);
  await guest.call.join(names.guest);
  await until(host.call, () => [...host.call.knocks.values()].some((k) => k.name === names.guest));
  await host.call.approve([...host.call.knocks.values()].find((k) => k.name === names.guest)!.id);
  await until(guest.call, () => guest.call.phase.kind === 'in-call' && guest.call.safetyCode === host.call.safetyCode);
  return { host, guest };
}
