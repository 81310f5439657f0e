/**
 * A participant whose signaling connection drops comes back by itself as the
 * same participant: no new knock, nothing lost, the others see "reconnecting"
 * rather than a leave. Real server, Node clients on the browser's protocol library.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectClient, createLink, signUp, startServer, until, type TestLink, type TestServer } from './support/server.js';

describe('coming back after a lost connection', () => {
  let server: TestServer;
  let cookie: string;

  before(async () => {
    server = await startServer({ roomLimits: { resumeGraceMs: 8000 } });
    cookie = await signUp(server, 'ana');
  });
  after(() => server.close());

  async function callOfTwo(link: TestLink) {
    const host = await connectClient(server, link, cookie);
    await host.call.join('Ana');
    await until(host.call, () => host.call.phase.kind === 'in-call' && host.call.keys !== undefined);
    const guest = await connectClient(server, link);
    await guest.call.join('Bo');
    await until(host.call, () => host.call.knocks.size === 1);
    await host.call.approve([...host.call.knocks.keys()][0]!);
    await until(guest.call, () => guest.call.phase.kind === 'in-call' && guest.call.safetyCode === host.call.safetyCode);
    return { host, guest };
  }

  it('resumes as the same participant, shown as reconnecting meanwhile, without knocking again', async () => {
    const link = await createLink(server, cookie);
    const { host, guest } = await callOfTwo(link);
    const guestId = guest.call.you!.id;

    guest.raw().terminate();
    await until(host.call, () => host.call.participants.get(guestId)?.reconnecting === true);
    assert.equal(guest.call.reconnecting, true);
    assert.equal(guest.call.phase.kind, 'in-call');

    // Muting while the connection is down is not lost: it goes out once back.
    guest.call.setMediaState(false, true);
    await until(guest.call, () => !guest.call.reconnecting);
    assert.equal(guest.call.you!.id, guestId);
    await until(host.call, () => {
      const bo = host.call.participants.get(guestId);
      return bo?.reconnecting === false && bo.audio === false;
    });
    assert.equal(host.call.participants.size, 1);
    assert.equal(host.call.knocks.size, 0, 'no new knock');
    guest.call.leave();
    host.call.end();
  });

  it('gets the key rotation that happened while it was away', async () => {
    const link = await createLink(server, cookie);
    const { host, guest } = await callOfTwo(link);
    const third = await connectClient(server, link);
    await third.call.join('Cy');
    await until(host.call, () => host.call.knocks.size === 1);
    await host.call.approve([...host.call.knocks.keys()][0]!);
    await until(third.call, () => third.call.phase.kind === 'in-call' && third.call.safetyCode === host.call.safetyCode);
    await until(guest.call, () => guest.call.safetyCode === host.call.safetyCode);

    guest.raw().terminate();
    await until(host.call, () => host.call.participants.get(guest.call.you!.id)?.reconnecting === true);
    const epochBefore = host.call.keys!.key.epoch;
    third.call.leave(); // the key leader rotates; the grant for the away guest waits on the server
    await until(host.call, () => host.call.keys!.key.epoch > epochBefore);
    await until(guest.call, () => !guest.call.reconnecting && guest.call.keys?.key.epoch === host.call.keys!.key.epoch);
    assert.equal(guest.call.safetyCode, host.call.safetyCode);
    host.call.end();
  });

  it('learns why the call is over when it ended while the connection was down', async () => {
    const link = await createLink(server, cookie);
    const { host, guest } = await callOfTwo(link);
    guest.raw().terminate();
    await until(host.call, () => host.call.participants.get(guest.call.you!.id)?.reconnecting === true);
    host.call.end();
    await until(guest.call, () => guest.call.phase.kind === 'ended');
    assert.deepEqual(guest.call.phase, { kind: 'ended', code: 'call_ended', message: 'The host ended the call.' });
  });

  it('refuses a resume with a token it does not know, with a sentence', async () => {
    const link = await createLink(server, cookie);
    const stranger = await connectClient(server, link);
    const closed = stranger.signaling.next('closed');
    stranger.signaling.send({ type: 'resume', token: 'A'.repeat(22), received: 0 });
    const m = await closed;
    assert.equal(m.code, 'resume_failed');
    assert.match(m.message, /Join again from the link/);
  });
});
