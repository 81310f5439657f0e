/**
 * Chat, raised hands and reactions in the call, end-to-end encrypted: messages are MLS application messages, so the server
 * relays bytes it cannot read, a newcomer sees nothing from before it came, and someone removed
 * is not heard — even through a server that relays for it. Node clients (the protocol library the
 * browser uses) against a real server on loopback.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CallSession } from '../src/client/call.js';
import { toBase64url } from '../src/e2ee/keys.js';
import type { CallGroup } from '../src/e2ee/mls.js';
import { LinkcallError } from '../src/protocol/errors.js';
import { callOfTwo, connectClient, createLink, signUp, startServer, until, type TestServer } from './support/server.js';
import { sleep } from './support/wait.js';

type Client = Awaited<ReturnType<typeof connectClient>>;

const texts = (call: CallSession) => call.chat.map((m) => `${m.mine ? 'me' : m.name}: ${m.text}`);

describe('chat, hands, reactions and lock in the call', { timeout: 60_000 }, () => {
  let server: TestServer;
  let cookie: string;
  /** Every WebSocket frame the server saw or sent, as text. */
  const wire: string[] = [];

  before(async () => {
    server = await startServer({ tap: (e) => void ((e.kind === 'ws-in' || e.kind === 'ws-out') && wire.push(e.data.toString())) });
    cookie = await signUp(server, 'ana');
  });
  after(() => server.close());

  /** `name` knocks and `approver` lets it in; resolves once it shares `reference`'s safety code. */
  async function letIn(link: Parameters<typeof connectClient>[1], approver: Client, name: string, reference: Client): Promise<Client> {
    const guest = await connectClient(server, link);
    await guest.call.join(name);
    await until(approver.call, () => [...approver.call.knocks.values()].some((k) => k.name === name));
    await approver.call.approve([...approver.call.knocks.values()].find((k) => k.name === name)!.id);
    await until(guest.call, () => guest.call.phase.kind === 'in-call' && guest.call.safetyCode === reference.call.safetyCode);
    return guest;
  }

  it('both see each other’s messages with the sender’s name; the server sees none of the text; markup stays text', async () => {
    const link = await createLink(server, cookie, 'Chat');
    const { host, guest } = await callOfTwo(server, link, cookie);
    await host.call.sendChat('Zanzibar quokka at noon?');
    await until(guest.call, () => guest.call.chat.length === 1);
    await guest.call.sendChat('  <b>yes</b>\nsee you  ');
    await until(host.call, () => host.call.chat.length === 2);
    assert.deepEqual(texts(guest.call), ['Ana: Zanzibar quokka at noon?', 'me: <b>yes</b>\nsee you']);
    assert.deepEqual(texts(host.call), ['me: Zanzibar quokka at noon?', 'Bob: <b>yes</b>\nsee you']);
    assert.ok(wire.some((f) => f.includes('"appMessage"')), 'the messages crossed the server');
    for (const secret of ['Zanzibar', 'quokka', 'see you', '<b>']) {
      assert.equal(wire.filter((f) => f.includes(secret)).length, 0, `the server never saw "${secret}"`);
    }
    host.signaling.close();
    guest.signaling.close();
  });

  it('refuses an empty or over-long message before anything is sent', async () => {
    const link = await createLink(server, cookie, 'Limits');
    const { host, guest } = await callOfTwo(server, link, cookie);
    for (const bad of ['', '   ', 'x'.repeat(2001), 'bell\u0007']) {
      await assert.rejects(host.call.sendChat(bad), (e: unknown) => e instanceof LinkcallError && e.code === 'bad_message');
    }
    await host.call.sendChat('x'.repeat(2000));
    await until(guest.call, () => guest.call.chat.length === 1);
    host.signaling.close();
    guest.signaling.close();
  });

  it('a newcomer sees nothing said before it came; someone removed is not heard, even relayed by the server', async () => {
    const link = await createLink(server, cookie, 'History');
    const { host, guest: bob } = await callOfTwo(server, link, cookie);
    await host.call.sendChat('before Cleo');
    await until(bob.call, () => bob.call.chat.length === 1);

    const cleo = await letIn(link, host, 'Cleo', host);
    await host.call.sendChat('after Cleo');
    await until(cleo.call, () => cleo.call.chat.length === 1);
    assert.deepEqual(texts(cleo.call), ['Ana: after Cleo']);

    // Bob is removed; a server that still relays for him gets nothing of his onto the screens.
    const bobGroup = (bob.call as unknown as { group: CallGroup }).group;
    const room = server.app.rooms.get(link.id) as unknown as { toAdmitted(m: unknown, except?: string): void };
    const bobId = bob.call.you!.id;
    host.call.remove(bobId);
    await until(host.call, () => host.call.memberCount === 2 && cleo.call.safetyCode === host.call.safetyCode);
    const forged = await bobGroup.seal(new TextEncoder().encode(JSON.stringify({ k: 'chat', t: 'I am still here' })));
    room.toAdmitted({ type: 'appMessage', from: bobId, data: toBase64url(forged) });
    await sleep(500);
    assert.ok(!texts(host.call).some((t) => t.includes('still here')), 'the host does not show it');
    assert.ok(!texts(cleo.call).some((t) => t.includes('still here')), 'nor does Cleo');
    host.signaling.close();
    cleo.signaling.close();
  });

  it('raised hands and reactions reach everyone; only the host lowers someone else’s hand; the server sees neither', async () => {
    const link = await createLink(server, cookie, 'Hands');
    const { host, guest: bob } = await callOfTwo(server, link, cookie);
    const bobId = bob.call.you!.id;
    const framesBefore = wire.length;
    await bob.call.raiseHand(true);
    await until(host.call, () => host.call.hands.has(bobId));
    await bob.call.react('🎉');
    await until(host.call, () => host.call.reactions.get(bobId)?.reaction === '🎉');
    await assert.rejects(bob.call.react('💩' as never), TypeError, 'only the fixed set');

    // Bob may not lower the host's hand; the host may lower Bob's.
    await host.call.raiseHand(true);
    await until(bob.call, () => bob.call.hands.has(host.call.you!.id));
    await bob.call.lowerHand(host.call.you!.id); // not the host: nothing is sent
    await host.call.lowerHand(bobId);
    await until(bob.call, () => !bob.call.hands.has(bobId));
    assert.equal(host.call.hands.has(host.call.you!.id), true, 'the host’s hand is still up');
    assert.equal(wire.slice(framesBefore).filter((f) => /"k":|"up":|🎉/.test(f)).length, 0, 'the server saw no hand or reaction in clear');
    host.signaling.close();
    bob.signaling.close();
  });

  it('the host locks the call: a guest opening the link is told so in a sentence; unlocked, it can knock again', async () => {
    const link = await createLink(server, cookie, 'Locked');
    const { host, guest: bob } = await callOfTwo(server, link, cookie);
    host.call.setLocked(true);
    await until(bob.call, () => bob.call.locked);
    const late = await connectClient(server, link);
    const closed = late.signaling.next('closed');
    await late.call.join('Late');
    const notice = await closed;
    assert.equal(notice.code, 'call_locked');
    assert.match(notice.message, /locked/);
    assert.equal(late.call.phase.kind, 'ended');
    // A guest cannot unlock it.
    const refused = bob.signaling.next('error');
    bob.call.setLocked(false);
    assert.equal((await refused).code, 'not_allowed');
    host.call.setLocked(false);
    await until(bob.call, () => !bob.call.locked);
    const again = await connectClient(server, link);
    await again.call.join('Late');
    await until(host.call, () => [...host.call.knocks.values()].some((k) => k.name === 'Late'));
    host.signaling.close();
    bob.signaling.close();
    again.signaling.close();
  });

  it('a chat flood is refused with a sentence and reaches nobody past the limit; the call goes on', async () => {
    const link = await createLink(server, cookie, 'Flood');
    const { host, guest: bob } = await callOfTwo(server, link, cookie);
    const sent = [];
    for (let i = 0; i < 12; i++) sent.push(bob.call.sendChat(`flood ${i}`).then(() => true, (e: LinkcallError) => e.code));
    const results = await Promise.all(sent);
    assert.equal(results.filter((r) => r === true).length, 10, 'ten go out (a burst)');
    assert.deepEqual(results.filter((r) => r !== true), ['rate_limited', 'rate_limited'], 'the rest are refused at once, with a sentence to show');
    // A client that skips its own limit meets the server's: 5 a second per person.
    const group = (bob.call as unknown as { group: CallGroup }).group;
    const refusals: string[] = [];
    bob.signaling.on('error', (m) => void refusals.push(m.code));
    for (let i = 0; i < 30; i++) {
      const data = await group.seal(new TextEncoder().encode(JSON.stringify({ k: 'chat', t: `raw ${i}` })));
      bob.signaling.send({ type: 'appMessage', data: toBase64url(data) });
    }
    await sleep(500);
    assert.ok(refusals.filter((c) => c === 'rate_limited').length >= 15, `the server refused the flood (${refusals.length})`);
    assert.ok(host.call.chat.length <= 25, `the host got ${host.call.chat.length} messages, not 42`);
    // Nothing else suffers: a new guest is let in as usual.
    const cleo = await letIn(link, host, 'Cleo', host);
    host.signaling.close();
    bob.signaling.close();
    cleo.signaling.close();
  });

  it('the host sends a waiting guest a note the server cannot read; only that guest can open it', async () => {
    const link = await createLink(server, cookie, 'Lobby note');
    const host = await connectClient(server, link, cookie);
    await host.call.join('Ana');
    await until(host.call, () => host.call.phase.kind === 'in-call' && host.call.keys !== undefined);
    const dee = await connectClient(server, link);
    await dee.call.join('Dee');
    await until(host.call, () => [...host.call.knocks.values()].some((k) => k.name === 'Dee'));
    const id = [...host.call.knocks.values()].find((k) => k.name === 'Dee')!.id;
    const before = wire.length;
    await host.call.sendLobbyNote(id, 'Two minutes, finishing another call');
    await until(dee.call, () => dee.call.lobbyNote === 'Two minutes, finishing another call');
    assert.equal(wire.slice(before).filter((f) => f.includes('finishing')).length, 0, 'the server never saw the text');
    await assert.rejects(host.call.sendLobbyNote(id, 'x'.repeat(201)), LinkcallError);
    // A waiting guest cannot send notes to others.
    const refused = dee.signaling.next('error');
    dee.signaling.send({ type: 'lobbyNote', participantId: id, sealed: 'AAAA' });
    assert.equal((await refused).code, 'not_in_call');
    host.signaling.close();
    dee.signaling.close();
  });

  it('a co-host approves a knock while the host is present; the grant is the host’s alone, checked by the server and by every member', async () => {
    const link = await createLink(server, cookie, 'Co-host');
    const { host, guest: bob } = await callOfTwo(server, link, cookie);
    const bobId = bob.call.you!.id;
    // Bob cannot make himself a co-host: the server refuses, and his MLS claim is ignored by the others.
    const refused = bob.signaling.next('error');
    bob.signaling.send({ type: 'coHost', participantId: bobId, coHost: true });
    assert.equal((await refused).code, 'not_allowed');
    const bobGroup = (bob.call as unknown as { group: CallGroup }).group;
    const bobKey = bobGroup.members().find((m) => m.isMe)!.signatureKeyHash;
    const claim = await bobGroup.seal(new TextEncoder().encode(JSON.stringify({ k: 'cohost', key: bobKey, on: true })));
    bob.signaling.send({ type: 'appMessage', data: toBase64url(claim) });
    await sleep(300);
    assert.equal(host.call.isCoHost(bobId), false, 'a guest’s own claim changes nothing');

    await host.call.setCoHost(bobId, true);
    await until(bob.call, () => bob.call.canApprove && bob.call.isCoHost(bobId));
    const cleo = await letIn(link, bob, 'Cleo', host);
    assert.equal(host.call.memberCount, 3, 'the host accepted the co-host’s commit');
    assert.equal(host.call.refusedCommits, 0);
    host.signaling.close();
    bob.signaling.close();
    cleo.signaling.close();
  });

  it('Mute everyone mutes everyone but the host, each told who did it; a guest cannot', async () => {
    const link = await createLink(server, cookie, 'Mute all');
    const { host, guest: bob } = await callOfTwo(server, link, cookie);
    const cleo = await letIn(link, host, 'Cleo', host);
    const refused = bob.signaling.next('error');
    bob.call.muteEveryone();
    assert.equal((await refused).code, 'not_allowed');
    host.call.muteEveryone();
    await until(bob.call, () => bob.call.mutedBy === 'Ana');
    await until(cleo.call, () => cleo.call.mutedBy === 'Ana');
    await until(host.call, () => [...host.call.participants.values()].every((p) => !p.audio));
    assert.equal(host.call.mutedBy, undefined, 'the host is not muted');
    host.call.askToUnmute(bob.call.you!.id);
    await until(bob.call, () => bob.call.unmuteRequest === 'Ana');
    bob.call.setMediaState(true, true);
    await until(host.call, () => host.call.participants.get(bob.call.you!.id)?.audio === true);
    host.signaling.close();
    bob.signaling.close();
    cleo.signaling.close();
  });
});
