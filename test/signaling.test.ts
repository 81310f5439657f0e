import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { deriveLinkKeys, newLinkSecret } from '../src/e2ee/keys.js';
import { closeCodeFor, ERRORS } from '../src/protocol/errors.js';
import type { ServerMessage } from '../src/protocol/messages.js';
import { connectClient, createLink, signUp, startServer, until, type TestLink, type TestServer } from './support/server.js';

/** Send a raw frame and return the next message the server answers with. */
function rawExchange(ws: WebSocket, frame: string | Buffer, binary = false): Promise<ServerMessage> {
  return new Promise((resolve) => {
    ws.once('message', (data) => resolve(JSON.parse(String(data)) as ServerMessage));
    ws.send(frame, { binary });
  });
}

function closeCode(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}

describe('signaling over a real server', () => {
  let server: TestServer;
  let hostCookie: string;
  let link: TestLink;

  before(async () => {
    server = await startServer();
    hostCookie = await signUp(server, 'ana');
    link = await createLink(server, hostCookie, 'Standup');
  });
  after(() => server.close());

  async function hostInCall(l: TestLink = link) {
    const host = await connectClient(server, l, hostCookie);
    await host.call.join('Ana');
    await until(host.call, () => host.call.phase.kind === 'in-call' && host.call.keys !== undefined);
    return host;
  }

  async function knock(host: Awaited<ReturnType<typeof hostInCall>>, name: string, l: TestLink = link) {
    const guest = await connectClient(server, l);
    await guest.call.join(name);
    await until(host.call, () => [...host.call.knocks.values()].some((k) => k.name === name));
    const id = [...host.call.knocks.values()].find((k) => k.name === name)!.id;
    return { guest, id };
  }

  it('knock → approve → both sides see each other joined, with the same call key', async () => {
    const host = await hostInCall();
    assert.equal(host.call.you?.role, 'host');
    const { guest, id } = await knock(host, 'Bob');
    assert.deepEqual(guest.call.phase, { kind: 'waiting', hostPresent: true });

    await host.call.approve(id);
    await until(guest.call, () => guest.call.phase.kind === 'in-call' && guest.call.keys !== undefined);
    await until(host.call, () => host.call.participants.has(id));
    assert.deepEqual([...guest.call.participants.values()].map((p) => p.name), ['Ana']);
    assert.equal(host.call.participants.get(id)?.name, 'Bob');
    await until(host.call, () => host.call.safetyCode === guest.call.safetyCode);
    assert.equal(guest.call.keys?.key.epoch, 1, 'the Add commit moved the group to epoch 1');
    assert.equal(guest.call.memberCount, 2);

    guest.call.leave();
    await until(host.call, () => !host.call.participants.has(id) && host.call.keys?.key.epoch === 2);
    assert.equal(host.call.memberCount, 1, 'the host committed Bob’s removal: a new epoch without him');
    host.signaling.close();
    guest.signaling.close();
  });

  it('knock → decline: the guest is told it was declined and disconnected', async () => {
    const host = await hostInCall();
    const { guest, id } = await knock(host, 'Mallory');
    const closed = guest.signaling.next('closed');
    const code = closeCode(guest.raw());
    host.call.decline(id);
    assert.deepEqual(await closed, { type: 'closed', code: 'declined', message: 'The host declined your request to join.' });
    assert.equal(await code, closeCodeFor('declined'));
    assert.equal(guest.call.phase.kind, 'ended');
    host.signaling.close();
  });

  it('refuses host-only actions from a waiting guest and from an admitted guest', async () => {
    const host = await hostInCall();
    const hostId = host.call.you!.id;
    const { guest: bob, id: bobId } = await knock(host, 'Bob');
    const fakeCommit = { slot: 0, commit: 'AAAA', welcome: 'AAAA' };

    for (const message of [
      { type: 'approve', participantId: bobId, ...fakeCommit },
      { type: 'remove', participantId: hostId },
      { type: 'end' },
      { type: 'commit', slot: 0, commit: 'AAAA' },
    ] as const) {
      const error = bob.signaling.next('error');
      const seq = bob.signaling.send(message);
      assert.deepEqual(await error, { type: 'error', code: 'not_in_call', message: 'You are not in a call yet.', seq });
    }
    // A waiting guest may connect its publishing side (nothing of it is forwarded before it is let
    // in): a real offer is answered, a bad one refused.
    const refused = bob.signaling.next('error');
    bob.signaling.send({ type: 'publish', sdp: 'v=0' });
    assert.equal((await refused).code, 'media_failed');

    await host.call.approve(bobId);
    await until(bob.call, () => bob.call.phase.kind === 'in-call');
    const { guest: eve, id: eveId } = await knock(host, 'Eve');
    for (const message of [
      { type: 'approve', participantId: eveId, ...fakeCommit },
      { type: 'decline', participantId: eveId },
      { type: 'remove', participantId: hostId },
      { type: 'end' },
    ] as const) {
      const error = bob.signaling.next('error');
      bob.signaling.send(message);
      assert.equal((await error).code, 'not_allowed');
    }
    assert.equal(eve.call.phase.kind, 'waiting', 'the refused actions changed nothing');
    assert.equal(host.call.participants.size, 1);

    const ended = [bob, eve].map((c) => c.signaling.next('closed'));
    host.call.end();
    for (const closed of await Promise.all(ended)) assert.equal(closed.code, 'call_ended');
    host.signaling.close();
  });

  it('shows no lasting error when the SFU refuses a media answer: the media layer makes its connections again', async () => {
    const host = await hostInCall();
    const { guest: bob, id: bobId } = await knock(host, 'Bob');
    await host.call.approve(bobId);
    await until(bob.call, () => bob.call.phase.kind === 'in-call');
    // An answer the SFU's engine rejects (what a connection that failed at its first answer gets).
    const refused = bob.signaling.next('error');
    bob.signaling.send({ type: 'subscribeAnswer', sdp: 'v=0' });
    assert.equal((await refused).code, 'media_failed');
    await sleep(100);
    assert.equal(bob.call.lastErrorCode, undefined);
    assert.equal(bob.call.phase.kind, 'in-call');
    host.signaling.close();
    bob.signaling.close();
  });

  it('tells new SFU transports the tiles again after a media restart', async () => {
    const host = await hostInCall();
    const { guest, id } = await knock(host, 'Vic');
    await host.call.approve(id);
    await until(guest.call, () => guest.call.phase.kind === 'in-call');
    const sent: unknown[] = [];
    const send = guest.signaling.send.bind(guest.signaling);
    guest.signaling.send = ((m: Parameters<typeof send>[0]) => (m.type === 'viewport' && sent.push(m.tiles), send(m))) as typeof send;
    const tiles = [{ participantId: host.call.you!.id, width: 320, height: 180 }];
    guest.call.setViewport(tiles);
    guest.call.setViewport(tiles);
    assert.equal(sent.length, 1, 'a repeated viewport is not sent again');
    const restarted = guest.signaling.next('mediaRestarted');
    guest.signaling.send({ type: 'restartMedia' });
    await restarted;
    assert.deepEqual(sent, [tiles, tiles], 'the viewport went out again for the new transports');
    host.signaling.close();
    guest.signaling.close();
  });

  it("handles what a page sends right behind its join after the join, not as from someone who is not in the call", async () => {
    const host = await connectClient(server, link, hostCookie);
    const errors: string[] = [];
    host.signaling.on('error', (m) => errors.push(m.code));
    const send = host.signaling.send.bind(host.signaling);
    // In the same breath as the join, as a page publishes at once (the server still reads the link then).
    host.signaling.send = ((m: Parameters<typeof send>[0]) => {
      send(m);
      if (m.type === 'join') send({ type: 'mediaState', audio: false, video: true });
    }) as typeof send;
    await host.call.join('Ana');
    await until(host.call, () => host.call.phase.kind === 'in-call');
    const pong = host.signaling.next('pong');
    send({ type: 'ping', seq: 1 });
    await pong;
    assert.deepEqual(errors, []);
    host.signaling.close();
  });

  it('answers malformed, unknown and oversized frames with typed errors and keeps the connection', async () => {
    const ws = new WebSocket(server.wsUrl);
    await new Promise((r) => ws.once('open', r));
    assert.deepEqual(await rawExchange(ws, '{not json'), { type: 'error', code: 'bad_message', message: 'That message was not understood.' });
    assert.equal(((await rawExchange(ws, JSON.stringify({ type: 'teleport', seq: 7 }))) as { code: string }).code, 'unknown_type');
    assert.equal(((await rawExchange(ws, JSON.stringify({ type: 'join', linkId: link.id, card: 'AAAA', admin: true }))) as { code: string }).code, 'bad_message');
    assert.equal(((await rawExchange(ws, JSON.stringify({ type: 'join', linkId: link.id, name: 'Bob' }))) as { code: string }).code, 'bad_message');
    assert.equal(((await rawExchange(ws, JSON.stringify({ type: 'approve', participantId: 42 }))) as { code: string }).code, 'bad_message');
    assert.equal(((await rawExchange(ws, 'null')) as { code: string }).code, 'unknown_type');
    assert.equal(((await rawExchange(ws, JSON.stringify({ type: 'ping', pad: 'x'.repeat(70_000) }))) as { code: string }).code, 'message_too_large');
    assert.equal(((await rawExchange(ws, Buffer.from([1, 2, 3]), true)) as { code: string }).code, 'bad_message');
    assert.deepEqual(await rawExchange(ws, JSON.stringify({ type: 'ping', seq: 9 })), { type: 'pong', seq: 9 });
    ws.close();
  });

  it('refuses names that are empty, too long or contain control characters before anything is sent; shows markup as text', async () => {
    const c = await connectClient(server, link);
    let sent = 0;
    c.signaling.onAny(() => sent++);
    for (const name of ['', '   ', 'x'.repeat(65), 'Bob\u0000', 'Bo\nb', 'evil\u202eman']) {
      await assert.rejects(c.call.join(name), (err: Error & { code?: string }) => err.code === 'invalid_name', JSON.stringify(name.length));
    }
    assert.equal(sent, 0, 'the server never heard of the bad names');
    const host = await hostInCall();
    await c.call.join('  <img src=x onerror=alert(1)>  ');
    await until(host.call, () => host.call.knocks.size > 0);
    assert.equal([...host.call.knocks.values()][0]!.name, '<img src=x onerror=alert(1)>');
    host.call.end();
    c.signaling.close();
  });

  it('shows a knock sealed with another secret as unreadable, never as a name', async () => {
    const host = await hostInCall();
    const impostor = await connectClient(server, { id: link.id, keys: await deriveLinkKeys(newLinkSecret()), hostKeyHash: link.hostKeyHash });
    await impostor.call.join('Trudy');
    await until(host.call, () => host.call.knocks.size > 0);
    const k = [...host.call.knocks.values()][0]!;
    assert.equal(k.name, undefined);
    // …and cannot be approved: no Add commit is made for it.
    await host.call.approve(k.id);
    assert.equal(host.call.memberCount, 1);
    host.call.end();
  });

  it('tells a guest when a link is unknown or deleted, and ends a call whose link is deleted', async () => {
    const unknown = await connectClient(server, { ...link, id: 'AAAAAAAAAAAAAAAAAAAAAA' });
    const closed = unknown.signaling.next('closed');
    await unknown.call.join('Bob');
    assert.equal((await closed).code, 'link_not_found');

    const doomed = await createLink(server, hostCookie, 'Doomed');
    const host = await hostInCall(doomed);
    const hostClosed = host.signaling.next('closed');
    const res = await fetch(`${server.url}/api/links/${doomed.id}`, { method: 'DELETE', headers: { cookie: hostCookie } });
    assert.equal(res.status, 204);
    assert.equal((await hostClosed).code, 'link_deleted');

    const late = await connectClient(server, doomed);
    const lateClosed = late.signaling.next('closed');
    await late.call.join('Bob');
    assert.deepEqual(await lateClosed, { type: 'closed', code: 'link_deleted', message: 'This call link was deleted by its host. Ask them for a new one.' });
  });

  it('refuses a WebSocket opened from another site', async () => {
    const ws = new WebSocket(server.wsUrl, { headers: { origin: 'https://evil.example' } });
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    assert.equal(status, 403);
  });
});

describe('knock rate limits', () => {
  it('a knock past the per-link limit ends, saying why, instead of waiting for ever', async () => {
    const server = await startServer({ rateLimits: { knocksPerLinkPerMinute: 3 } });
    try {
      const cookie = await signUp(server, 'ana');
      const link = await createLink(server, cookie);
      const phases: string[] = [];
      for (let i = 0; i < 4; i++) {
        const c = await connectClient(server, link);
        await c.call.join(`Guest ${i}`);
        await until(c.call, () => c.call.phase.kind !== 'connecting');
        phases.push(c.call.phase.kind === 'ended' ? c.call.phase.code : c.call.phase.kind);
        if (i === 3) assert.deepEqual(c.call.phase, { kind: 'ended', code: 'rate_limited', message: ERRORS.rate_limited.message });
        c.signaling.close();
      }
      assert.deepEqual(phases, ['waiting', 'waiting', 'waiting', 'rate_limited']);
    } finally {
      await server.close();
    }
  });
});

describe('a knock that gets no place in the call', () => {
  it('on a link that expired while the person looked at the preview, ends saying so', async () => {
    const server = await startServer();
    try {
      const cookie = await signUp(server, 'ana');
      const link = await createLink(server, cookie, 'Soon gone', Date.now() + 1500);
      const c = await connectClient(server, link);
      await c.call.prepare('Bob');
      await sleep(2000);
      c.call.sendJoin();
      await until(c.call, () => c.call.phase.kind !== 'connecting');
      assert.deepEqual(c.call.phase, { kind: 'ended', code: 'link_expired', message: ERRORS.link_expired.message });
    } finally {
      await server.close();
    }
  });

  it('to a server that stopped answering, ends saying so instead of connecting for ever', async () => {
    // A real server in a process of its own, stopped (SIGSTOP) once the page is connected: its
    // socket stays open and says nothing, as a hung server's would.
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/netlab-server.ts'], { env: { ...process.env, HOST: '127.0.0.1' }, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('listening ') && resolve(l.slice('listening '.length)));
        child.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
      });
      const server = { url, wsUrl: `${url.replace('http', 'ws')}/ws` };
      const cookie = await signUp(server, 'ana');
      const link = await createLink(server, cookie);
      const c = await connectClient(server, link, undefined, 1500);
      await c.call.prepare('Bob');
      child.kill('SIGSTOP');
      const sentAt = Date.now();
      c.call.sendJoin();
      await until(c.call, () => c.call.phase.kind !== 'connecting', 10_000);
      assert.deepEqual(c.call.phase, { kind: 'ended', code: 'disconnected', message: 'The server did not answer your request to join.', unanswered: true });
      assert.ok(Date.now() - sentAt < 5000, `ended ${Date.now() - sentAt} ms after the knock`);
    } finally {
      // Running again, it ends when its stdin closes and removes its data directory.
      child.kill('SIGCONT');
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end();
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
  });
});
