/**
 * Response headers, cookies and the Origin rule, as a browser would meet them:
 * directly over http, behind a TLS proxy, and with an https PUBLIC_URL.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ERRORS } from '../src/protocol/errors.js';
import { buildApp, type App } from '../src/server/app.js';
import { loadConfig } from '../src/server/config.js';
import { SqliteStore } from '../src/server/store/sqlite.js';

interface Served {
  app: App;
  url: string;
  close(): Promise<void>;
}

/** A server configured from environment variables, as `main.ts` would be, on a free loopback port. */
async function serve(env: Record<string, string> = {}): Promise<Served> {
  const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-headers-'));
  const store = new SqliteStore(join(dataDir, 'linkcall.sqlite'));
  const app = await buildApp({
    config: loadConfig({ DATA_DIR: dataDir, PORT: '0', ...env }),
    store,
    logger: { level: 'warn' },
    rateLimits: { signUpsPerAddressPerHour: 1000 },
  });
  await app.http.listen({ port: 0, host: '127.0.0.1' });
  const address = app.http.server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return {
    app,
    url: `http://127.0.0.1:${address.port}`,
    async close() {
      await app.http.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

let userCount = 0;
async function signUpVia(app: App, headers: Record<string, string> = {}) {
  return app.http.inject({
    method: 'POST',
    url: '/api/signup',
    headers: { 'content-type': 'application/json', ...headers },
    payload: { username: `user${++userCount}`, password: 'correct horse battery' },
  });
}

const cookieOf = (res: { headers: Record<string, unknown> }) => String(res.headers['set-cookie'] ?? '');

const ALLOWED_SOURCES = new Set(["'self'", "'none'", 'data:', 'blob:', 'mediastream:', "'wasm-unsafe-eval'"]);

describe('a plain-http server', () => {
  let served: Served;
  before(async () => {
    served = await serve();
  });
  after(() => served.close());

  it('every kind of response carries a strict CSP, nosniff, no-referrer and frame denial, and no HSTS', async () => {
    const assets = readdirSync(new URL('../dist/public/assets', import.meta.url)).filter((f) => f.endsWith('.js'));
    const paths = ['/', '/join/AAAAAAAAAAAAAAAAAAAAAA', '/api/me', '/api/nothing-here', '/healthz', ...(assets[0] ? [`/assets/${assets[0]}`] : [])];
    for (const path of paths) {
      const res = await fetch(`${served.url}${path}`);
      const csp = res.headers.get('content-security-policy') ?? '';
      const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...sources]) => [name!, sources]));
      assert.deepEqual(directives.get('default-src'), ["'none'"], path);
      // 'wasm-unsafe-eval' lets the page compile WebAssembly (the blur and noise models, served
      // from this origin); JavaScript eval and inline script stay forbidden.
      assert.deepEqual(directives.get('script-src'), ["'self'", "'wasm-unsafe-eval'"], `${path}: scripts only from this origin, none inline, no eval`);
      assert.deepEqual(directives.get('frame-ancestors'), ["'none'"], path);
      assert.deepEqual(directives.get('base-uri'), ["'none'"], path);
      for (const [name, sources] of directives) {
        for (const source of sources) assert.ok(ALLOWED_SOURCES.has(source), `${path}: ${name} allows ${source}: no third-party origins, nothing unsafe`);
      }
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer', path);
      assert.equal(res.headers.get('x-frame-options'), 'DENY', path);
      assert.equal(res.headers.get('strict-transport-security'), null, `${path}: no HSTS over plain http`);
      await res.arrayBuffer();
    }
  });

  it('session cookies are HttpOnly, SameSite=Lax, for the whole site, and not Secure over plain http', async () => {
    const cookie = cookieOf(await signUpVia(served.app));
    assert.match(cookie, /^lc_session=[A-Za-z0-9_-]{43};/);
    assert.match(cookie, /; HttpOnly/);
    assert.match(cookie, /; SameSite=Lax/);
    assert.match(cookie, /; Path=\//);
    assert.doesNotMatch(cookie, /Secure/);
  });

  it('ignores X-Forwarded-Proto from a proxy it was not told to trust', async () => {
    const res = await signUpVia(served.app, { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.9' });
    assert.equal(res.headers['strict-transport-security'], undefined);
    assert.doesNotMatch(cookieOf(res), /Secure/);
  });

  it('no endpoint but the join page tells whether a link id exists', async () => {
    const owner = cookieOf(await signUpVia(served.app)).split(';')[0]!;
    const other = cookieOf(await signUpVia(served.app)).split(';')[0]!;
    const created = await served.app.http.inject({ method: 'POST', url: '/api/links', headers: { cookie: owner }, payload: {} });
    const { id } = created.json() as { id: string };
    assert.match(id, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(Buffer.from(id, 'base64url').length, 16, '128 bits');
    const unknown = 'AAAAAAAAAAAAAAAAAAAAAA';
    for (const [method, path, payload] of [
      ['PUT', '/info-mac', { mac: 'A'.repeat(43) }],
      ['DELETE', '', undefined],
    ] as const) {
      const answers = [];
      for (const target of [id, unknown]) {
        const res = await served.app.http.inject({ method, url: `/api/links/${target}${path}`, headers: { cookie: other }, ...(payload ? { payload } : {}) });
        answers.push({ status: res.statusCode, body: res.body });
      }
      assert.deepEqual(answers[0], answers[1], `${method} ${path}: someone else's link looks like no link`);
    }
  });
});

describe('behind TLS', () => {
  it('PUBLIC_URL=https://…: HSTS on every response and Secure cookies', async () => {
    const served = await serve({ PUBLIC_URL: 'https://calls.example' });
    try {
      const res = await signUpVia(served.app);
      assert.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
      assert.match(cookieOf(res), /; Secure/);
      const page = await served.app.http.inject({ url: '/' });
      assert.equal(page.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    } finally {
      await served.close();
    }
  });

  it('TRUST_PROXY with X-Forwarded-Proto: https: HSTS and Secure cookies; plain http through the proxy: neither', async () => {
    const served = await serve({ TRUST_PROXY: 'true' });
    try {
      const tls = await signUpVia(served.app, { 'x-forwarded-proto': 'https' });
      assert.equal(tls.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
      assert.match(cookieOf(tls), /; Secure/);
      const plain = await signUpVia(served.app, { 'x-forwarded-proto': 'http' });
      assert.equal(plain.headers['strict-transport-security'], undefined);
      assert.doesNotMatch(cookieOf(plain), /Secure/);
    } finally {
      await served.close();
    }
  });

  it('TRUST_PROXY as proxy addresses: only those proxies are believed', async () => {
    const served = await serve({ TRUST_PROXY: '10.0.0.1' });
    try {
      const fromProxy = await served.app.http.inject({ url: '/', remoteAddress: '10.0.0.1', headers: { 'x-forwarded-proto': 'https' } });
      assert.ok(fromProxy.headers['strict-transport-security']);
      const fromElsewhere = await served.app.http.inject({ url: '/', remoteAddress: '10.0.0.2', headers: { 'x-forwarded-proto': 'https' } });
      assert.equal(fromElsewhere.headers['strict-transport-security'], undefined);
    } finally {
      await served.close();
    }
  });
});

describe('the Origin rule', () => {
  let served: Served;
  let cookie: string;
  before(async () => {
    served = await serve({ PUBLIC_URL: 'http://calls.example:8080' });
    cookie = cookieOf(await signUpVia(served.app)).split(';')[0]!;
  });
  after(() => served.close());

  async function upgrade(origin?: string): Promise<number> {
    const ws = new WebSocket(`${served.url.replace('http', 'ws')}/ws`, { headers: origin ? { origin } : {} });
    return new Promise((resolve) => {
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    });
  }

  it('opens signaling WebSockets from the server’s own origin and its PUBLIC_URL only', async () => {
    assert.equal(await upgrade(served.url), 101, 'the origin the browser reached');
    assert.equal(await upgrade('http://calls.example:8080'), 101, 'PUBLIC_URL');
    assert.equal(await upgrade(undefined), 101, 'no Origin: not a browser, so no user cookie to abuse');
    for (const origin of ['https://evil.example', 'null', `${served.url}.evil.example`, 'http://calls.example:8081']) {
      assert.equal(await upgrade(origin), 403, origin);
    }
  });

  it('refuses API writes from another site, even with the host’s cookie', async () => {
    const create = (origin?: string) =>
      fetch(`${served.url}/api/links`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie, ...(origin ? { origin } : {}) },
        body: '{}',
      });
    const refused = await create('https://evil.example');
    assert.equal(refused.status, 403);
    assert.deepEqual(await refused.json(), { error: 'not_allowed', message: ERRORS.not_allowed.message });
    const list = async () => ((await (await fetch(`${served.url}/api/links`, { headers: { cookie } })).json()) as { links: unknown[] }).links;
    assert.equal((await list()).length, 0, 'nothing was created');
    assert.equal((await create(served.url)).status, 201, 'same origin');
    assert.equal((await create()).status, 201, 'no Origin (not a browser)');
    const del = await fetch(`${served.url}/api/signout`, { method: 'POST', headers: { cookie, origin: 'https://evil.example' } });
    assert.equal(del.status, 403, 'not even sign-out');
  });
});
