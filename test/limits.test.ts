/**
 * Floods and caps: each limit answers with a typed error and a sentence (and,
 * over HTTP, when to try again). Limits already covered elsewhere: sign-ups per
 * address, sign-ins per address and links per hour (http.test.ts), knocks per
 * link and refused host-only actions (signaling.test.ts), messages per
 * connection (fuzz.test.ts), lobby and participant caps as room rules (room.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { closeCodeFor, ERRORS } from '../src/protocol/errors.js';
import type { ServerMessage } from '../src/protocol/messages.js';
import type { CallMedia } from '../src/server/sfu/call-media.js';
import type { RoomLimits } from '../src/server/rooms/room.js';
import { callOfTwo, connectClient, createLink, signUp, startServer, until, type TestLink, type TestServer } from './support/server.js';

const RATE_LIMITED = { error: 'rate_limited', message: ERRORS.rate_limited.message };

async function withServer(opts: Parameters<typeof startServer>[0], run: (server: TestServer) => Promise<void>): Promise<void> {
  const server = await startServer(opts);
  try {
    await run(server);
  } finally {
    await server.close();
  }
}

const post = (server: TestServer, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

/**
 * A raw socket (no reconnecting client library) that joins — knocks, or enters as host with
 * a cookie — and returns the first message about it (the resume token aside).
 */
async function rawKnock(
  server: TestServer,
  link: Pick<TestLink, 'id'>,
  cookie?: string,
  headers: Record<string, string> = {},
): Promise<{ first: ServerMessage; ws: WebSocket; closeCode: Promise<number> }> {
  const ws = new WebSocket(server.wsUrl, { headers: { ...headers, ...(cookie ? { cookie } : {}) } });
  await new Promise((resolve) => ws.once('open', resolve));
  const closeCode = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
  const first = new Promise<ServerMessage>((resolve) => {
    const onMessage = (d: WebSocket.RawData) => {
      const m = JSON.parse(String(d)) as ServerMessage;
      if (m.type === 'resumable') return;
      ws.off('message', onMessage);
      resolve(m);
    };
    ws.on('message', onMessage);
  });
  ws.send(JSON.stringify({ type: 'join', linkId: link.id, card: 'A'.repeat(40) }));
  return { first: await first, ws, closeCode };
}

describe('sign-in failures slow down guessing', () => {
  const backoff = { freeFailures: 3, baseDelayMs: 400, maxDelayMs: 2000 };

  it('after the free failures, one username must wait, told when it may try again; the right password then works', async () => {
    await withServer({ rateLimits: { signInBackoffPerAccount: backoff, signInsPerAddressPerMinute: 1000 } }, async (server) => {
      await signUp(server, 'ana', 'correct horse battery');
      const attempt = (username: string, password: string) => post(server, '/api/signin', { username, password });
      for (let i = 0; i < 3; i++) assert.equal((await attempt('ana', 'wrong password')).status, 401);
      assert.equal((await attempt('ana', 'wrong password')).status, 401, 'the fourth failure is still checked');
      const blocked = await attempt('ANA', 'correct horse battery');
      assert.equal(blocked.status, 429, 'while waiting, even the right password is refused (usernames ignore case)');
      assert.deepEqual(await blocked.json(), RATE_LIMITED);
      assert.equal(blocked.headers.get('retry-after'), '1');

      // Another username from the same address is not affected.
      assert.equal((await attempt('bob', 'wrong password')).status, 401);

      await new Promise((resolve) => setTimeout(resolve, 450));
      assert.equal((await attempt('ana', 'wrong password')).status, 401, 'after the wait, one more try');
      assert.equal((await attempt('ana', 'correct horse battery')).status, 429, 'each failure doubles the wait');
      await new Promise((resolve) => setTimeout(resolve, 850));
      assert.equal((await attempt('ana', 'correct horse battery')).status, 200);
      assert.equal((await attempt('ana', 'wrong password')).status, 401, 'a success starts the count afresh');
    });
  });

  it('answers the same for usernames that exist and that do not', async () => {
    await withServer({ rateLimits: { signInBackoffPerAccount: backoff, signInsPerAddressPerMinute: 1000 } }, async (server) => {
      await signUp(server, 'real');
      const statuses = async (username: string) => {
        const out: number[] = [];
        for (let i = 0; i < 5; i++) out.push((await post(server, '/api/signin', { username, password: 'wrong password' })).status);
        return out;
      };
      assert.deepEqual(await statuses('real'), await statuses('ghost'));
    });
  });

  it('slows down one address guessing at many usernames', async () => {
    await withServer(
      { rateLimits: { signInBackoffPerAddress: { freeFailures: 4, baseDelayMs: 60_000, maxDelayMs: 60_000 }, signInsPerAddressPerMinute: 1000 } },
      async (server) => {
        for (let i = 0; i < 5; i++) assert.equal((await post(server, '/api/signin', { username: `user${i}`, password: 'wrong password' })).status, 401);
        const res = await post(server, '/api/signin', { username: 'user9', password: 'wrong password' });
        assert.equal(res.status, 429);
        assert.equal(res.headers.get('retry-after'), '60');
      },
    );
  });
});

describe('HTTP floods get clear answers', () => {
  it('says when to retry after too many sign-ups, sign-ins or links', async () => {
    await withServer({ rateLimits: { signUpsPerAddressPerHour: 1, signInsPerAddressPerMinute: 1, linksPerAccountPerHour: 1 } }, async (server) => {
      const cookie = await signUp(server, 'ana');
      const signup = await post(server, '/api/signup', { username: 'bob', password: 'correct horse battery' });
      assert.equal(signup.status, 429);
      assert.ok(Number(signup.headers.get('retry-after')) > 3000, 'about an hour');
      await post(server, '/api/signin', { username: 'ana', password: 'correct horse battery' });
      const signin = await post(server, '/api/signin', { username: 'ana', password: 'correct horse battery' });
      assert.equal(signin.status, 429);
      assert.ok(Number(signin.headers.get('retry-after')) <= 60);
      await createLink(server, cookie);
      const link = await post(server, '/api/links', {}, { cookie });
      assert.equal(link.status, 429);
      assert.deepEqual(await link.json(), RATE_LIMITED);
      assert.ok(link.headers.get('retry-after'));
    });
  });

  it('caps the links one host keeps; deleting one makes room', async () => {
    await withServer({ rateLimits: { maxLinksPerHost: 2 } }, async (server) => {
      const cookie = await signUp(server, 'ana');
      const first = await createLink(server, cookie);
      await createLink(server, cookie);
      const refused = await post(server, '/api/links', {}, { cookie });
      assert.equal(refused.status, 409);
      assert.deepEqual(await refused.json(), { error: 'too_many_links', message: ERRORS.too_many_links.message });
      await fetch(`${server.url}/api/links/${first.id}`, { method: 'DELETE', headers: { cookie } });
      assert.equal((await post(server, '/api/links', {}, { cookie })).status, 201);
    });
  });

  it('refuses request bodies over 16 KiB as too large', async () => {
    await withServer({}, async (server) => {
      const res = await post(server, '/api/signin', { username: 'ana', password: 'x'.repeat(20_000) });
      assert.equal(res.status, 413);
      assert.deepEqual(await res.json(), { error: 'message_too_large', message: ERRORS.message_too_large.message });
    });
  });
});

describe('signaling floods and caps get clear answers', () => {
  it('refuses knocks past the per-address limit, whatever the link (set as an operator does, from the environment)', async () => {
    await withServer({ env: { KNOCKS_PER_ADDRESS_PER_MINUTE: '2' } }, async (server) => {
      const cookie = await signUp(server, 'ana');
      const links = [await createLink(server, cookie), await createLink(server, cookie), await createLink(server, cookie)];
      const answers: string[] = [];
      for (const link of links) {
        const { first, ws } = await rawKnock(server, link);
        answers.push(first.type === 'closed' ? first.code : first.type);
        ws.close();
      }
      assert.deepEqual(answers, ['waiting', 'waiting', 'rate_limited']);
    });
  });

  it('an address holds at most WS_CONNECTIONS_PER_ADDRESS signaling connections: the next is told why; closing one frees a place', async () => {
    await withServer({ env: { WS_CONNECTIONS_PER_ADDRESS: '3' } }, async (server) => {
      const open = async () => {
        const ws = new WebSocket(server.wsUrl);
        const first = new Promise<ServerMessage | undefined>((resolve) => {
          ws.once('message', (d) => resolve(JSON.parse(String(d)) as ServerMessage));
          ws.once('close', () => resolve(undefined));
        });
        const closeCode = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
        await new Promise((resolve) => ws.once('open', resolve));
        return { ws, first, closeCode };
      };
      const held = [await open(), await open(), await open()];
      const extra = await open();
      assert.deepEqual(await extra.first, { type: 'closed', code: 'too_many_connections', message: ERRORS.too_many_connections.message });
      assert.equal(await extra.closeCode, closeCodeFor('too_many_connections'));
      held[0]!.ws.close();
      await held[0]!.closeCode;
      await new Promise((r) => setTimeout(r, 50));
      const again = await open();
      again.ws.send(JSON.stringify({ type: 'ping', seq: 7 }));
      assert.deepEqual(await again.first, { type: 'pong', seq: 7 }, 'a place freed by a close is usable');
      for (const c of [...held, again]) c.ws.close();
    });
  });

  it('IPv6 clients are counted by their /64: knocks, connections and sign-ins from one /64 share one budget', async () => {
    const env = { TRUST_PROXY: 'true', KNOCKS_PER_ADDRESS_PER_MINUTE: '2', WS_CONNECTIONS_PER_ADDRESS: '3' };
    await withServer({ env, rateLimits: { signInsPerAddressPerMinute: 2 } }, async (server) => {
      const cookie = await signUp(server, 'ana');
      const link = await createLink(server, cookie);
      const from = (address: string) => ({ 'x-forwarded-for': address });
      const answer = async (address: string) => {
        const { first, ws } = await rawKnock(server, link, undefined, from(address));
        ws.close();
        return first.type === 'closed' || first.type === 'error' ? first.code : first.type;
      };
      // Three knocks from three addresses of one /64 (as one subscriber's devices would have).
      assert.deepEqual(
        [await answer('2001:db8:5:6::1'), await answer('2001:db8:5:6:aaaa::2'), await answer('2001:0db8:0005:0006:ffff:ffff:ffff:ffff')],
        ['waiting', 'waiting', 'rate_limited'],
      );
      assert.equal(await answer('2001:db8:5:7::1'), 'waiting', 'the next /64 has its own budget');

      const sockets = await Promise.all(['::1', '::2:2', ':a:b:c:d', ':ffff:0:0:1'].map(async (suffix) => {
        const ws = new WebSocket(server.wsUrl, { headers: from(`2001:db8:9:9${suffix}`) });
        const first = new Promise<string>((resolve) => ws.once('message', (d) => resolve((JSON.parse(String(d)) as { code?: string; type: string }).code ?? 'open')));
        await new Promise((resolve) => ws.once('open', resolve));
        ws.send(JSON.stringify({ type: 'ping' }));
        return { ws, first: await first };
      }));
      assert.deepEqual(sockets.map((s) => s.first).sort(), ['open', 'open', 'open', 'too_many_connections']);
      for (const s of sockets) s.ws.close();

      const signIn = (address: string) => post(server, '/api/signin', { username: 'ana', password: 'correct horse battery' }, from(address));
      assert.deepEqual(
        [(await signIn('2001:db8:7:7::1')).status, (await signIn('2001:db8:7:7::2')).status, (await signIn('2001:db8:7:7::3')).status],
        [200, 200, 429],
      );
    });
  });

  it('a flood of knocks by someone who knows only the link id costs the SFU at most lobbyMediaSlots (4) transports', async () => {
    await withServer({ rateLimits: { knocksPerAddressPerMinute: 1000 } }, async (server) => {
      const cookie = await signUp(server, 'ana');
      const link = await createLink(server, cookie);
      const knocks = [];
      for (let i = 0; i < 15; i++) knocks.push(await rawKnock(server, link));
      assert.deepEqual(new Set(knocks.map((k) => k.first.type)), new Set(['waiting']));
      const media = server.app.rooms.get(link.id)!.media as CallMedia;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(media.router.subscribeTransports.size, 4, 'receiving transports for 4 of 15 knocks');
      for (const k of knocks) k.ws.close();
    });
  });

  it('a full lobby and a full call each end the extra guest with a sentence and a close code', async () => {
    await withServer({ roomLimits: { maxLobby: 1, maxParticipants: 2 } }, async (server) => {
      const cookie = await signUp(server, 'ana');
      const link = await createLink(server, cookie);
      const waiting = await rawKnock(server, link);
      assert.equal(waiting.first.type, 'waiting');
      const extra = await rawKnock(server, link);
      assert.deepEqual(extra.first, { type: 'closed', code: 'lobby_full', message: ERRORS.lobby_full.message });
      assert.equal(await extra.closeCode, closeCodeFor('lobby_full'));
      waiting.ws.send(JSON.stringify({ type: 'leave' }));
      await waiting.closeCode;

      const host = await connectClient(server, link, cookie);
      await host.call.join('Ana');
      await until(host.call, () => host.call.phase.kind === 'in-call' && host.call.keys !== undefined);
      const admit = async (name: string) => {
        const guest = await connectClient(server, link);
        await guest.call.join(name);
        await until(host.call, () => [...host.call.knocks.values()].some((k) => k.name === name));
        await host.call.approve([...host.call.knocks.values()].find((k) => k.name === name)!.id);
        return guest;
      };
      const bob = await admit('Bob');
      await until(bob.call, () => bob.call.phase.kind === 'in-call');
      const eve = await admit('Eve');
      await until(eve.call, () => eve.call.phase.kind === 'ended');
      assert.deepEqual(eve.call.phase, { kind: 'ended', code: 'call_full', message: ERRORS.call_full.message });
      host.call.end();
      await until(bob.call, () => bob.call.phase.kind === 'ended');
    });
  });

  it('refuses fields a guest might use to pose as someone else', async () => {
    await withServer({}, async (server) => {
      const cookie = await signUp(server, 'ana');
      const link = await createLink(server, cookie);
      const host = await connectClient(server, link, cookie);
      await host.call.join('Ana');
      await until(host.call, () => host.call.phase.kind === 'in-call');
      const hostId = host.call.you!.id;
      const { ws } = await rawKnock(server, link);
      const answers: ServerMessage[] = [];
      ws.on('message', (d) => answers.push(JSON.parse(String(d)) as ServerMessage));
      for (const m of [
        { type: 'leave', participantId: hostId },
        { type: 'end', from: hostId },
        { type: 'mediaState', audio: false, video: false, participantId: hostId },
        { type: 'join', linkId: link.id, card: 'AAAA', role: 'host' },
        { type: 'join', linkId: link.id, card: 'AAAA', accountId: 'x' },
      ]) ws.send(JSON.stringify(m));
      ws.send(JSON.stringify({ type: 'ping', seq: 5 }));
      await new Promise<void>((resolve) => ws.on('message', (d) => String(d).includes('"pong"') && resolve()));
      assert.deepEqual(
        answers.filter((m) => m.type === 'error').map((m) => (m as { code: string }).code),
        ['bad_message', 'bad_message', 'bad_message', 'bad_message', 'bad_message'],
      );
      assert.equal(host.call.phase.kind, 'in-call', 'the host is untouched');
      host.call.end();
      ws.close();
    });
  });
});

describe('when the host is gone', () => {
  // Short timers so the bounds show within a test.
  const limits: Partial<RoomLimits> = { approverDelayMs: 300, knockTimeoutMs: 1500, resumeGraceMs: 300 };

  it('the call goes on; a knock waits, told so, until a participant admitted long enough lets it in', async () => {
    await withServer({ roomLimits: limits }, async (server) => {
      const cookie = await signUp(server, 'ana');
      // Every member applies the same short approver delay as the server here.
      const link = { ...(await createLink(server, cookie)), approverDelayMs: limits.approverDelayMs };
      const { host, guest: bob } = await callOfTwo(server, link, cookie);

      host.call.leave();
      await until(bob.call, () => bob.call.participants.size === 0);
      assert.equal(bob.call.phase.kind, 'in-call', 'the call continues without the host');
      assert.equal(server.app.rooms.size, 1);

      const eve = await connectClient(server, link);
      const waiting = eve.signaling.next('waiting');
      await eve.call.join('Eve');
      const w = await waiting;
      assert.equal(w.timeoutMs, 1500, 'the guest is told how long it may wait');
      await until(bob.call, () => bob.call.canApprove && bob.call.knocks.size === 1, 5000);
      await until(eve.call, () => eve.call.phase.kind === 'waiting' && eve.call.phase.hostPresent);
      await bob.call.approve([...bob.call.knocks.keys()][0]!);
      await until(eve.call, () => eve.call.phase.kind === 'in-call' && eve.call.keys !== undefined);
      assert.equal(eve.call.safetyCode, bob.call.safetyCode);
      bob.call.leave();
      eve.call.leave();
    });
  });

  it('a knock nobody can answer ends after the bound with a sentence', async () => {
    await withServer({ roomLimits: limits }, async (server) => {
      const cookie = await signUp(server, 'ana');
      const link = await createLink(server, cookie);
      const { first, ws, closeCode } = await rawKnock(server, link);
      assert.deepEqual(first, { type: 'waiting', hostName: 'ana', hostPresent: false, timeoutMs: 1500 });
      const closed = new Promise<ServerMessage>((resolve) =>
        ws.on('message', (d) => {
          const m = JSON.parse(String(d)) as ServerMessage;
          if (m.type === 'closed') resolve(m);
        }),
      );
      assert.deepEqual(await closed, { type: 'closed', code: 'host_absent', message: ERRORS.host_absent.message });
      assert.equal(await closeCode, closeCodeFor('host_absent'));
    });
  });

  it('a call whose last participant dropped closes after the grace period', async () => {
    await withServer({ roomLimits: limits }, async (server) => {
      const cookie = await signUp(server, 'ana');
      const link = await createLink(server, cookie);
      const host = await rawKnock(server, link, cookie);
      assert.equal(host.first.type, 'joined');
      assert.equal(server.app.rooms.size, 1);
      host.ws.terminate(); // the connection drops; the place is held for the grace period
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(server.app.rooms.size, 1, 'held while it may come back');
      const deadline = Date.now() + 3000;
      while (server.app.rooms.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(server.app.rooms.size, 0, 'closed once nobody is in it');
    });
  });
});
