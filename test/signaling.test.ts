import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { closeCodeFor } from '../src/protocol/errors.js';
import type { ServerMessage } from '../src/protocol/messages.js';
import { connectClient, createLink, signUp, startServer, type TestServer } from './support/server.js';

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
  let linkId: string;

  before(async () => {
    server = await startServer();
    hostCookie = await signUp(server, 'ana');
    linkId = await createLink(server, hostCookie, 'Standup');
  });
  after(() => server.close());

  it('knock → approve → both sides see each other joined', async () => {
    const host = await connectClient(server, hostCookie);
    const hostJoined = host.signaling.next('joined');
    host.call.join(linkId, 'Ana');
    assert.equal((await hostJoined).you.role, 'host');

    const guest = await connectClient(server);
    const waiting = guest.signaling.next('waiting');
    const knock = host.signaling.next('knock');
    guest.call.join(linkId, 'Bob');
    assert.deepEqual(await waiting, { type: 'waiting', hostName: 'ana', hostPresent: true, timeoutMs: 600_000 });
    const { knock: k } = await knock;
    assert.equal(k.name, 'Bob');

    const guestJoined = guest.signaling.next('joined');
    const hostSees = host.signaling.next('participantJoined');
    host.call.approve(k.id);
    const joined = await guestJoined;
    assert.equal(joined.you.name, 'Bob');
    assert.deepEqual(joined.participants.map((p) => p.name), ['Ana']);
    assert.equal((await hostSees).participant.name, 'Bob');
    assert.equal(guest.call.phase.kind, 'in-call');

    const hostSeesLeave = host.signaling.next('participantLeft');
    guest.call.leave();
    assert.equal((await hostSeesLeave).participantId, joined.you.id);
    host.signaling.close();
    guest.signaling.close();
  });

  it('knock → decline: the guest is told it was declined and disconnected', async () => {
    const host = await connectClient(server, hostCookie);
    const hostJoined = host.signaling.next('joined');
    host.call.join(linkId, 'Ana');
    await hostJoined;
    const guest = await connectClient(server);
    const knock = host.signaling.next('knock');
    guest.call.join(linkId, 'Mallory');
    const closed = guest.signaling.next('closed');
    const code = closeCode(guest.raw());
    host.call.decline((await knock).knock.id);
    assert.deepEqual(await closed, { type: 'closed', code: 'declined', message: 'The host declined your request to join.' });
    assert.equal(await code, closeCodeFor('declined'));
    assert.equal(guest.call.phase.kind, 'ended');
    host.signaling.close();
  });

  it('refuses host-only actions from a waiting guest and from an admitted guest', async () => {
    const host = await connectClient(server, hostCookie);
    const hostJoined = host.signaling.next('joined');
    host.call.join(linkId, 'Ana');
    const hostId = (await hostJoined).you.id;

    const bob = await connectClient(server);
    let knock = host.signaling.next('knock');
    bob.call.join(linkId, 'Bob');
    const bobKnock = (await knock).knock;

    for (const message of [
      { type: 'approve', participantId: bobKnock.id },
      { type: 'remove', participantId: hostId },
      { type: 'end' },
      { type: 'publish', sdp: 'v=0' },
    ] as const) {
      const error = bob.signaling.next('error');
      const seq = bob.signaling.send(message);
      assert.deepEqual(await error, { type: 'error', code: 'not_in_call', message: 'You are not in a call yet.', seq });
    }

    const bobJoined = bob.signaling.next('joined');
    host.call.approve(bobKnock.id);
    await bobJoined;
    const eve = await connectClient(server);
    knock = host.signaling.next('knock');
    eve.call.join(linkId, 'Eve');
    const eveKnock = (await knock).knock;
    for (const message of [
      { type: 'approve', participantId: eveKnock.id },
      { type: 'decline', participantId: eveKnock.id },
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

  it('answers malformed, unknown and oversized frames with typed errors and keeps the connection', async () => {
    const ws = new WebSocket(server.wsUrl);
    await new Promise((r) => ws.once('open', r));
    assert.equal((await rawExchange(ws, '{not json')).type, 'error');
    assert.deepEqual(await rawExchange(ws, '{not json'), { type: 'error', code: 'bad_message', message: 'That message was not understood.' });
    assert.equal(((await rawExchange(ws, JSON.stringify({ type: 'teleport', seq: 7 }))) as { code: string }).code, 'unknown_type');
    assert.equal(((await rawExchange(ws, JSON.stringify({ type: 'join', linkId, name: 'Bob', admin: true }))) as { code: string }).code, 'bad_message');
    assert.equal(((await rawExchange(ws, JSON.stringify({ type: 'approve', participantId: 42 }))) as { code: string }).code, 'bad_message');
    assert.equal(((await rawExchange(ws, 'null')) as { code: string }).code, 'unknown_type');
    assert.equal(((await rawExchange(ws, JSON.stringify({ type: 'ping', pad: 'x'.repeat(70_000) }))) as { code: string }).code, 'message_too_large');
    assert.equal(((await rawExchange(ws, Buffer.from([1, 2, 3]), true)) as { code: string }).code, 'bad_message');
    assert.deepEqual(await rawExchange(ws, JSON.stringify({ type: 'ping', seq: 9 })), { type: 'pong', seq: 9 });
    ws.close();
  });

  it('refuses names that are empty, too long or contain control characters, and relays markup as text', async () => {
    const c = await connectClient(server);
    for (const name of ['', '   ', 'x'.repeat(65), 'Bob\u0000', 'Bo\nb', 'evil\u202eman']) {
      const error = c.signaling.next('error');
      c.signaling.send({ type: 'join', linkId, name });
      assert.equal((await error).code, 'invalid_name', JSON.stringify(name));
    }
    const host = await connectClient(server, hostCookie);
    const hostJoined = host.signaling.next('joined');
    host.call.join(linkId, 'Ana');
    await hostJoined;
    const knock = host.signaling.next('knock');
    c.call.join(linkId, '  <img src=x onerror=alert(1)>  ');
    assert.equal((await knock).knock.name, '<img src=x onerror=alert(1)>');
    host.call.end();
    c.signaling.close();
  });

  it('tells a guest when a link is unknown or deleted, and ends a call whose link is deleted', async () => {
    const unknown = await connectClient(server);
    const closed = unknown.signaling.next('closed');
    unknown.call.join('AAAAAAAAAAAAAAAAAAAAAA', 'Bob');
    assert.equal((await closed).code, 'link_not_found');

    const doomed = await createLink(server, hostCookie, 'Doomed');
    const host = await connectClient(server, hostCookie);
    const hostJoined = host.signaling.next('joined');
    host.call.join(doomed, 'Ana');
    await hostJoined;
    const hostClosed = host.signaling.next('closed');
    const res = await fetch(`${server.url}/api/links/${doomed}`, { method: 'DELETE', headers: { cookie: hostCookie } });
    assert.equal(res.status, 204);
    assert.equal((await hostClosed).code, 'link_deleted');

    const late = await connectClient(server);
    const lateClosed = late.signaling.next('closed');
    late.call.join(doomed, 'Bob');
    assert.deepEqual(await lateClosed, { type: 'closed', code: 'link_deleted', message: 'This call link was deleted by its host. Ask them for a new one.' });
  });

  it('refuses a WebSocket opened from another site', async () => {
    const ws = new WebSocket(server.wsUrl, { headers: { origin: 'https://evil.example' } });
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    assert.equal(status, 403);
  });
});

describe('knock rate limits', () => {
  it('refuses knocks past the per-link limit with a typed error', async () => {
    const server = await startServer({ rateLimits: { knocksPerLinkPerMinute: 3 } });
    try {
      const cookie = await signUp(server, 'ana');
      const linkId = await createLink(server, cookie);
      const codes: string[] = [];
      for (let i = 0; i < 4; i++) {
        const c = await connectClient(server);
        const first = new Promise<ServerMessage>((resolve) => c.signaling.onAny(resolve));
        c.call.join(linkId, `Guest ${i}`);
        const m = await first;
        codes.push(m.type === 'error' ? m.code : m.type);
        c.signaling.close();
      }
      assert.deepEqual(codes, ['waiting', 'waiting', 'waiting', 'rate_limited']);
    } finally {
      await server.close();
    }
  });
});
