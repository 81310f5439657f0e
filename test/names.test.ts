/**
 * Names as the HTTP API accepts them: a link's name, when created and when renamed, is refused with
 * the registry's `bad_request` if it carries a bidi override or isolate or a control character,
 * and kept as typed otherwise. In-process (`app.inject()`), no port.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ERRORS } from '../src/protocol/errors.js';
import type { App } from '../src/server/app.js';
import { inProcessApp, type InProcessApp } from './support/in-process.js';

const DISGUISING = ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u0000', '\u0007', '\u007f', '\u0085', '\u2028'];
const REFUSED = { error: 'bad_request', message: ERRORS.bad_request.message };

describe('link names over HTTP', () => {
  let served: InProcessApp;
  let app: App;
  let cookie: string;
  let linkId: string;

  before(async () => {
    served = await inProcessApp();
    app = served.app;
    const signedUp = await app.http.inject({ method: 'POST', url: '/api/signup', payload: { username: 'namehost', password: 'correct horse battery' } });
    cookie = String(signedUp.headers['set-cookie']).split(';')[0]!;
    const created = await app.http.inject({ method: 'POST', url: '/api/links', headers: { cookie }, payload: { name: 'Standup' } });
    linkId = (created.json() as { id: string }).id;
  });
  after(() => served.close());

  it('refuses to create a link whose name carries a bidi override, a bidi isolate or a control character', async () => {
    for (const c of DISGUISING) {
      const res = await app.http.inject({ method: 'POST', url: '/api/links', headers: { cookie }, payload: { name: `Team${c}call` } });
      assert.equal(res.statusCode, 400, `U+${c.codePointAt(0)!.toString(16)}`);
      assert.deepEqual(res.json(), REFUSED);
    }
  });

  it('refuses to rename a link to a name that carries a bidi override, a bidi isolate or a control character', async () => {
    for (const c of DISGUISING) {
      const res = await app.http.inject({ method: 'PATCH', url: `/api/links/${linkId}`, headers: { cookie }, payload: { name: `Team${c}call`, mac: 'A'.repeat(43) } });
      assert.equal(res.statusCode, 400, `U+${c.codePointAt(0)!.toString(16)}`);
      assert.deepEqual(res.json(), REFUSED);
    }
    const links = (await app.http.inject({ url: '/api/links', headers: { cookie } })).json() as { links: { name: string }[] };
    assert.deepEqual(links.links.map((l) => l.name), ['Standup'], 'the name is unchanged');
  });

  it('keeps a right-to-left name with markup as typed, only trimmed', async () => {
    const res = await app.http.inject({ method: 'POST', url: '/api/links', headers: { cookie }, payload: { name: '  اجتماع <b>الفريق</b>  ' } });
    assert.equal(res.statusCode, 201);
    assert.equal((res.json() as { name: string }).name, 'اجتماع <b>الفريق</b>');
  });

  it('answers an unknown API path with 404 not_found from the error registry', async () => {
    const res = await app.http.inject({ url: '/api/no-such-thing' });
    assert.equal(res.statusCode, 404);
    assert.deepEqual(res.json(), { error: 'not_found', message: ERRORS.not_found.message });
  });
});
