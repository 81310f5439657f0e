import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLink, signUp, startServer, type TestServer } from './support/server.js';

describe('HTTP API and pages', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const post = (path: string, body: unknown, cookie = '') =>
    fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: JSON.stringify(body) });

  it('signs up, refuses a taken username and a weak password, and signs in', async () => {
    const cookie = await signUp(server, 'carla');
    assert.match(cookie, /^lc_session=/);
    const taken = await post('/api/signup', { username: 'carla', password: 'another password' });
    assert.equal(taken.status, 409);
    assert.deepEqual(await taken.json(), { error: 'username_taken', message: 'That username is already taken.' });
    assert.equal((await post('/api/signup', { username: 'dan', password: 'short' })).status, 400);
    assert.equal((await post('/api/signin', { username: 'carla', password: 'wrong password' })).status, 401);
    const ok = await post('/api/signin', { username: 'carla', password: 'correct horse battery' });
    assert.equal(ok.status, 200);
    const setCookie = ok.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /HttpOnly/i);
    assert.match(setCookie, /SameSite=Lax/i);
  });

  it('stores a password hash, never the password', async () => {
    await signUp(server, 'erin', 'a very secret passphrase');
    const account = await server.store.findAccountByUsername('erin');
    assert.ok(account);
    assert.ok(account.passwordHash.startsWith('$argon2id$'));
    assert.ok(!account.passwordHash.includes('a very secret passphrase'));
  });

  it('creates, lists and deletes links for the signed-in host only', async () => {
    const cookie = await signUp(server, 'frank');
    const other = await signUp(server, 'gina');
    const { id } = await createLink(server, cookie, 'Family call');
    assert.match(id, /^[A-Za-z0-9_-]{22}$/);
    const list = (await (await fetch(`${server.url}/api/links`, { headers: { cookie } })).json()) as { links: { id: string; name: string }[] };
    assert.deepEqual(list.links.map((l) => l.name), ['Family call']);
    assert.equal((await fetch(`${server.url}/api/links`)).status, 401);
    assert.equal((await fetch(`${server.url}/api/links/${id}`, { method: 'DELETE', headers: { cookie: other } })).status, 404);
    assert.equal((await fetch(`${server.url}/api/links/${id}`, { method: 'DELETE', headers: { cookie } })).status, 204);
    const info = await fetch(`${server.url}/api/links/${id}/info`);
    assert.equal(info.status, 410);
    assert.equal(((await info.json()) as { message: string }).message, 'This call link was deleted by its host. Ask them for a new one.');
  });

  it('rate-limits sign-in attempts per address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await post('/api/signin', { username: 'nobody', password: 'wrong password' })).status);
    assert.deepEqual(statuses.slice(0, 5), [401, 401, 401, 401, 401]);
    assert.equal(statuses.at(-1), 429);
  });

  it('serves pages with a strict CSP and no-referrer, and 404s an unknown link page', async () => {
    const res = await fetch(`${server.url}/join/AAAAAAAAAAAAAAAAAAAAAA`);
    assert.equal(res.status, 404);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    // No inline script and no JavaScript eval; WebAssembly compilation only ('wasm-unsafe-eval', for the effects' models).
    assert.doesNotMatch(csp, /'unsafe-inline'|'unsafe-eval'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    const html = await res.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  });
});

describe('HTTP rate limits', () => {
  it('refuses the sixth sign-up from one address within the hour with a sentence', async () => {
    const server = await startServer({ rateLimits: { signUpsPerAddressPerHour: 5 } });
    try {
      const statuses: number[] = [];
      let last: unknown;
      for (let i = 0; i < 6; i++) {
        const res = await fetch(`${server.url}/api/signup`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: `user${i}`, password: 'correct horse battery' }),
        });
        statuses.push(res.status);
        last = await res.json();
      }
      assert.deepEqual(statuses, [201, 201, 201, 201, 201, 429]);
      assert.deepEqual(last, { error: 'rate_limited', message: 'Too many attempts. Please wait a moment and try again.' });
    } finally {
      await server.close();
    }
  });

  it('refuses link creation past the per-account limit', async () => {
    const server = await startServer({ rateLimits: { linksPerAccountPerHour: 2 } });
    try {
      const cookie = await signUp(server, 'lena');
      await createLink(server, cookie);
      await createLink(server, cookie);
      const res = await fetch(`${server.url}/api/links`, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: '{}' });
      assert.equal(res.status, 429);
    } finally {
      await server.close();
    }
  });
});
