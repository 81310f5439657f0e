/**
 * The server answers in the shapes of `protocol/http.ts`, the same schemas the browser app checks
 * its answers with (`ui/api.ts`): a route that drifted from them would break the pages. In-process
 * (`app.inject()`), no port.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { z } from 'zod';
import { ERROR_CODES } from '../src/protocol/errors.js';
import {
  accountResponse,
  errorResponse,
  healthResponse,
  iceConfig,
  linkList,
  linkPublicInfo,
  linkView,
  readinessResponse,
} from '../src/protocol/http.js';
import type { App } from '../src/server/app.js';
import { inProcessApp, type InProcessApp } from './support/in-process.js';

describe('HTTP answers and the shapes the pages check', () => {
  let served: InProcessApp;
  let app: App;
  let cookie: string;

  before(async () => {
    served = await inProcessApp();
    app = served.app;
  });
  after(() => served.close());

  type Request = { method?: 'GET' | 'POST'; url: string; headers?: Record<string, string>; payload?: object };
  const answer = async (shape: z.ZodType, status: number, request: Request) => {
    const res = await app.http.inject(request);
    assert.equal(res.statusCode, status, `${request.method ?? 'GET'} ${request.url}: ${res.body}`);
    const parsed = shape.safeParse(res.json());
    assert.ok(parsed.success, `${request.method ?? 'GET'} ${request.url}: ${res.body}`);
    return res;
  };

  it('signing up, signing in and asking who is signed in answer with an account', async () => {
    const res = await answer(accountResponse, 201, { method: 'POST', url: '/api/signup', payload: { username: 'shapes', password: 'correct horse battery' } });
    cookie = String(res.headers['set-cookie']).split(';')[0]!;
    await answer(accountResponse, 200, { method: 'POST', url: '/api/signin', payload: { username: 'shapes', password: 'correct horse battery' } });
    await answer(accountResponse, 200, { url: '/api/me', headers: { cookie } });
  });

  it('a new link, the list of links, its public facts and its ICE servers have the shapes the pages read', async () => {
    const created = await answer(linkView, 201, { method: 'POST', url: '/api/links', headers: { cookie }, payload: { name: 'Weekly', expiresAt: Date.now() + 3600_000 } });
    const { id } = created.json() as { id: string };
    await answer(linkList, 200, { url: '/api/links', headers: { cookie } });
    await answer(linkPublicInfo, 200, { url: `/api/links/${id}/info` });
    await answer(iceConfig, 200, { url: `/api/links/${id}/ice` });
    await answer(iceConfig, 200, { url: '/api/check/ice' });
  });

  it('health and readiness probes answer in their documented shapes', async () => {
    await answer(healthResponse, 200, { url: '/healthz' });
    await answer(readinessResponse, 200, { url: '/readyz' });
  });

  it('every refusal is a code from the registry with its sentence', async () => {
    for (const [status, request] of [
      [401, { url: '/api/links' }],
      [400, { method: 'POST', url: '/api/signup', payload: { username: 'x' } }],
      [404, { url: '/api/links/not-a-link-id/info' }],
      [404, { url: '/api/unknown' }],
    ] as [number, Request][]) {
      const res = await answer(errorResponse, status, request);
      assert.ok((ERROR_CODES as string[]).includes((res.json() as { error: string }).error), res.body);
    }
  });
});
