/**
 * Only a person's ✓ lets anyone into the encrypted call — tried as an attacker would, with Node
 * clients (the protocol library the browser uses) against a real server on loopback. Where the
 * server is the attacker, the test replaces server code in-process to play the malicious server.
 * Each attack ends the same way: the attacker holds no key of the call, the victims stay in the
 * call with the same group and safety code, and the screens say what a person would want to know.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CallSession } from '../src/client/call.js';
import { sealCard, toBase64url } from '../src/e2ee/keys.js';
import { newMemberKeys, type CallGroup } from '../src/e2ee/mls.js';
import { FrameCryptor } from '../src/e2ee/sframe.js';
import type { ServerMessage } from '../src/protocol/messages.js';
import type { Room, RoomPeer } from '../src/server/rooms/room.js';
import { connectClient, createLink, signUp, startServer, until, type TestLink, type TestServer } from './support/server.js';
import { sleep } from './support/wait.js';

type Client = Awaited<ReturnType<typeof connectClient>>;

/** The room's own participant record (the malicious server may rewrite it). */
interface RoomParticipant {
  id: string;
  role: 'host' | 'guest';
  status: 'lobby' | 'admitted';
  card: string;
  peer: RoomPeer;
}
interface RoomInternals {
  participants: Map<string, RoomParticipant>;
  admit(p: RoomParticipant, welcome?: string, returning?: boolean): void;
}

function internals(room: Room): RoomInternals {
  return room as unknown as RoomInternals;
}

/** Whether `key` opens a frame sealed under the victims' current key: the attacker's read access, in one bit. */
async function opens(victim: CallSession, attackerKey: CallSession['keys']): Promise<boolean> {
  if (!victim.keys || !attackerKey) return false;
  const sender = new FrameCryptor();
  await sender.setSendKey(victim.keys.key, victim.keys.senderIndex);
  const receiver = new FrameCryptor();
  await receiver.addReceiveKey(attackerKey.key);
  const meta = { kind: 'video' as const, keyFrame: false };
  return (await receiver.decrypt(await sender.encrypt(new Uint8Array(800).fill(1), meta), meta)) !== undefined;
}

function group(call: CallSession): CallGroup {
  return (call as unknown as { group: CallGroup }).group;
}

describe('only a person’s ✓ lets anyone into the encrypted call', { timeout: 120_000 }, () => {
  let server: TestServer;
  let cookie: string;
  const clients: Client[] = [];

  before(async () => {
    server = await startServer();
    cookie = await signUp(server, 'ana');
  });
  after(async () => {
    for (const c of clients) c.signaling.close();
    await server.close();
  });

  async function client(link: TestLink, owner = false): Promise<Client> {
    const c = await connectClient(server, link, owner ? cookie : undefined);
    clients.push(c);
    return c;
  }

  /** Ana (host) and Bob in a call on a fresh link; `more` more guests let in by Ana. */
  async function call(more: string[] = []) {
    const link = await createLink(server, cookie, 'Standup');
    const host = await client(link, true);
    await host.call.join('Ana');
    await until(host.call, () => host.call.phase.kind === 'in-call' && host.call.keys !== undefined);
    const guests: Client[] = [];
    for (const name of ['Bob', ...more]) guests.push(await admitted(link, host, name));
    return { link, host, guests, room: server.app.rooms.get(link.id) as Room };
  }

  async function knocking(link: TestLink, host: Client, name: string): Promise<{ guest: Client; id: string }> {
    const guest = await client(link);
    await guest.call.join(name);
    await until(host.call, () => [...host.call.knocks.values()].some((k) => k.name === name));
    return { guest, id: [...host.call.knocks.values()].find((k) => k.name === name)!.id };
  }

  async function admitted(link: TestLink, host: Client, name: string): Promise<Client> {
    const { guest, id } = await knocking(link, host, name);
    await host.call.approve(id);
    await until(guest.call, () => guest.call.phase.kind === 'in-call' && guest.call.safetyCode === host.call.safetyCode, 15_000);
    return guest;
  }

  /** The victims are still in the call, in one group: same safety code, same count, nobody else on screen. */
  async function victimsIntact(victims: Client[], members: number, absent: string) {
    await until(victims[0]!.call, () => victims.every((v) => v.call.safetyCode === victims[0]!.call.safetyCode), 10_000);
    for (const v of victims) {
      assert.equal(v.call.phase.kind, 'in-call', 'still in the call');
      assert.equal(v.call.memberCount, members, 'the group has only the people let in');
      assert.ok(![...v.call.participants.values()].some((p) => p.id === absent), 'the attacker is not on screen');
    }
  }

  it('the server labels a knocker “host” and admits it: it never gets a key, and nobody shows it', async () => {
    const { link, host, guests, room } = await call();
    const epoch = host.call.epoch;
    const { guest: mallory, id } = await knocking(link, host, 'Mallory');
    const p = internals(room).participants.get(id)!;
    Object.assign(p, { role: 'host' });
    internals(room).admit(p);
    await until(mallory.call, () => mallory.call.phase.kind === 'ended', 25_000);
    assert.deepEqual(mallory.call.phase, { kind: 'ended', code: 'key_refused', message: mallory.call.phase.kind === 'ended' ? mallory.call.phase.message : '' });
    assert.equal(mallory.call.keys, undefined, 'no key');
    await victimsIntact([host, ...guests], 2, id);
    assert.equal(host.call.epoch, epoch, 'nobody made a commit for it');
  });

  it('the server says a knocker is “returning” from a lost node: it never gets a key', async () => {
    const { link, host, guests, room } = await call();
    const { guest: mallory, id } = await knocking(link, host, 'Mallory');
    internals(room).admit(internals(room).participants.get(id)!, undefined, true);
    await until(mallory.call, () => mallory.call.phase.kind === 'ended', 25_000);
    assert.equal(mallory.call.keys, undefined);
    assert.equal(await opens(host.call, mallory.call.keys), false);
    await victimsIntact([host, ...guests], 2, id);
  });

  it('a silent ghost told only to the host (a replayed card of a member) gets nothing, and is not shown twice', async () => {
    const { host, guests, room } = await call();
    const bob = guests[0]!;
    const bobCard = internals(room).participants.get(bob.call.you!.id)!.card;
    const hostPeer = internals(room).participants.get(host.call.you!.id)!.peer;
    const ghost = { id: 'ghost-1', card: bobCard, role: 'guest' as const, since: Date.now(), audio: true, video: true, reconnecting: false, coHost: false };
    hostPeer.send({ type: 'participantJoined', participant: ghost } satisfies ServerMessage);
    // And a ghost whose card opens with nothing.
    hostPeer.send({ type: 'participantJoined', participant: { ...ghost, id: 'ghost-2', card: 'A'.repeat(64) } } satisfies ServerMessage);
    await sleep(1000);
    assert.equal(host.call.participants.has('ghost-1'), false);
    assert.equal(host.call.participants.has('ghost-2'), false);
    assert.equal(host.call.memberCount, 2);
    await victimsIntact([host, bob], 2, 'ghost-1');
  });

  it('a participant’s bogus commits — garbage, an epoch jump, an Add it may not make, a Remove of the host — change nothing; approvals go on', async () => {
    const { link, host, guests, room } = await call(['Cleo']);
    const [bob, cleo] = guests as [Client, Client];
    const code = host.call.safetyCode;
    const bobGroup = group(bob.call);
    const send = (commit: Uint8Array) => bob.signaling.send({ type: 'commit', slot: room.commitSlot, commit: toBase64url(commit) });
    const refusedBefore = host.call.refusedCommits;

    send(new Uint8Array([0, 1, 0, 2, 1, 2, 3, 4]));
    const mallory = await newMemberKeys('Mallory', Date.now());
    send((await bobGroup.add([mallory.keyPackage])).commit);
    send((await bobGroup.remove([0])).commit);
    send((await bobGroup.remove([2])).commit.slice(0, 40));
    await until(host.call, () => host.call.refusedCommits >= refusedBefore + 4, 10_000);
    // An epoch jump: Bob moves his own copy of the group on with a commit he never sends, then
    // sends one for the epoch after it (the old design took epoch 1 000 000 and ignored the rest).
    bobGroup.applyOwn(await bobGroup.remove([2]));
    send((await bobGroup.add([mallory.keyPackage])).commit);
    await sleep(500);
    assert.equal(host.call.safetyCode, code, 'the group did not change');
    await victimsIntact([host, cleo], 3, 'nobody');
    assert.equal(bob.call.phase.kind, 'in-call', 'nobody is ejected by a bad message, the sender included');

    // The slot order is not jammed: the host still lets someone in.
    const dee = await admitted(link, host, 'Dee');
    await until(cleo.call, () => cleo.call.safetyCode === host.call.safetyCode && cleo.call.memberCount === 4);
    assert.equal(dee.call.memberCount, 4);
  });

  it('a knock replayed by the server (a card seen before, or made long ago) is shown as such and cannot be approved', async () => {
    const { link, host, room } = await call();
    const hostPeer = internals(room).participants.get(host.call.you!.id)!.peer;
    const bobCard = [...internals(room).participants.values()].find((p) => p.role === 'guest')!.card;
    hostPeer.send({ type: 'knock', knock: { id: 'replay-1', card: bobCard, since: Date.now() } } satisfies ServerMessage);
    const old = await newMemberKeys('Eve', Date.now() - 10 * 60_000);
    hostPeer.send({ type: 'knock', knock: { id: 'replay-2', card: await sealCard(link.keys, link.id, old.bytes), since: Date.now() } } satisfies ServerMessage);
    await until(host.call, () => host.call.knocks.has('replay-1') && host.call.knocks.has('replay-2'));
    for (const id of ['replay-1', 'replay-2']) {
      const knock = host.call.knocks.get(id)!;
      assert.equal(knock.stale, true, `${id} is shown as stale`);
      const epoch = host.call.epoch;
      await host.call.approve(id);
      assert.equal(host.call.epoch, epoch, 'no Add commit for a stale knock');
    }
  });

  it('a removed participant holds nothing that opens what is said next', async () => {
    const { host, guests } = await call(['Cleo']);
    const [bob, cleo] = guests as [Client, Client];
    const bobKeys = bob.call.keys;
    const closed = bob.signaling.next('closed');
    host.call.remove(bob.call.you!.id);
    assert.equal((await closed).code, 'removed');
    await until(host.call, () => host.call.memberCount === 2 && cleo.call.memberCount === 2 && cleo.call.safetyCode === host.call.safetyCode);
    assert.notEqual(host.call.keys?.key.epoch, bobKeys?.key.epoch);
    assert.equal(await opens(host.call, bobKeys), false, 'the old key does not open new frames');
    assert.equal(await opens(host.call, cleo.call.keys), true, 'while those still in the call read each other');
  });

  it('the host who left and comes back (a reload) is added again by a member, from its pinned key alone', async () => {
    const { link, host, guests } = await call();
    const bob = guests[0]!;
    host.call.leave();
    await until(bob.call, () => bob.call.memberCount === 1 && !bob.call.participants.has(host.call.you!.id));
    // The host's browser still has the link's signing key: a new page enters as owner, with no Welcome yet.
    const again = await client(link, true);
    await again.call.join('Ana');
    await until(again.call, () => again.call.phase.kind === 'in-call' && again.call.keys !== undefined, 15_000);
    await until(bob.call, () => bob.call.memberCount === 2 && bob.call.safetyCode === again.call.safetyCode);
    assert.equal(again.call.you?.isHost, true, 'it holds the host’s leaf');
    assert.equal([...bob.call.participants.values()][0]?.isHost, true, 'and Bob’s screen shows it as the host');
  });
});
