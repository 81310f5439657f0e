/**
 * Group membership by MLS (src/e2ee/mls.ts): who may change the group, what a refused commit
 * leaves behind (nothing), and that frame keys and safety codes follow the group.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CallGroup, keyHash, newMemberKeys, newSigningKey, readKeyPackage, type CommitRules, type MemberKeys } from '../src/e2ee/mls.js';
import { FrameCryptor } from '../src/e2ee/sframe.js';

interface Clock {
  t: number;
}

function rules(hostKeyHash: string, clock: Clock, gone: Set<number> = new Set()): CommitRules {
  return { hostKeyHash, isGone: (leaf) => gone.has(leaf), now: () => clock.t };
}

async function call(names: string[]) {
  const clock: Clock = { t: Date.UTC(2026, 11, 4, 12) };
  const hostKey = await newSigningKey();
  const pin = keyHash(hostKey.publicKey);
  const gone = new Set<number>();
  const hostKeys = await newMemberKeys('Ana', clock.t, hostKey);
  const host = await CallGroup.create(hostKeys, rules(pin, clock, gone));
  const members: { name: string; keys: MemberKeys; group: CallGroup }[] = [{ name: 'Ana', keys: hostKeys, group: host }];
  for (const name of names) await admit(members, host, name, clock, pin, gone);
  return { clock, pin, gone, host, members };
}

/** `approver` adds `name`; every other member processes the commit in the server's order. */
async function admit(
  members: { name: string; keys: MemberKeys; group: CallGroup }[],
  approver: CallGroup,
  name: string,
  clock: Clock,
  pin: string,
  gone: Set<number>,
) {
  const keys = await newMemberKeys(name, clock.t);
  const card = await readKeyPackage(keys.bytes);
  assert.ok(card, 'the knock opens');
  const pending = await approver.add([card.keyPackage]);
  for (const m of members) {
    if (m.group === approver) assert.ok(m.group.applyOwn(pending));
    else assert.deepEqual(await m.group.process(pending.commit), { ok: true, added: [members.length], removed: [] });
  }
  const group = await CallGroup.fromWelcome(pending.welcome!, keys, rules(pin, clock, gone));
  members.push({ name, keys, group });
  return group;
}

async function codes(groups: CallGroup[]): Promise<string[]> {
  return Promise.all(groups.map((g) => g.safetyCode()));
}

test('an Add commit and Welcome let a guest in: everyone sees the same members, names and safety code', async () => {
  const { members } = await call(['Ben', 'Cleo']);
  for (const m of members) {
    assert.deepEqual(
      m.group.members().map((x) => [x.leaf, x.name, x.isHost]),
      [
        [0, 'Ana', true],
        [1, 'Ben', false],
        [2, 'Cleo', false],
      ],
    );
    assert.equal(m.group.epoch, 2);
  }
  const all = await codes(members.map((m) => m.group));
  assert.equal(new Set(all).size, 1, 'one safety code on every screen');
  assert.match(all[0]!, /^\d{4} \d{4} \d{4}$/);
});

test('frame keys come from the MLS exporter: a member decrypts another member’s frames, sender index = leaf', async () => {
  const { members } = await call(['Ben']);
  const [ana, ben] = members;
  const sender = new FrameCryptor();
  await sender.setSendKey(await ana!.group.callKey(), ana!.group.myLeaf);
  const receiver = new FrameCryptor();
  await receiver.addReceiveKey(await ben!.group.callKey());
  const frame = new Uint8Array(1200).fill(7);
  const meta = { kind: 'video' as const, keyFrame: false };
  const sealed = await sender.encrypt(frame, meta);
  assert.deepEqual(await receiver.decrypt(sealed, meta), frame);
});

test('a Remove commit moves everyone to a new epoch the removed member cannot follow, and the safety code changes', async () => {
  const { members, host } = await call(['Ben', 'Cleo']);
  const [, ben, cleo] = members;
  const codeBefore = await host.safetyCode();
  const keyBefore = await host.callKey();
  const pending = await host.remove([2]);
  assert.ok(host.applyOwn(pending));
  assert.deepEqual(await ben!.group.process(pending.commit), { ok: true, added: [], removed: [2] });
  // Cleo is no longer a member: the commit that removes her does not carry her into the next epoch.
  const cleoResult = await cleo!.group.process(pending.commit);
  assert.equal(cleoResult.ok && cleo!.group.epoch === host.epoch, false, 'the removed member does not reach the new epoch');
  assert.notEqual(await host.safetyCode(), codeBefore);
  assert.equal(await host.safetyCode(), await ben!.group.safetyCode());
  const keyAfter = await host.callKey();
  assert.notDeepEqual(keyAfter.secret, keyBefore.secret);
  // A frame under the new key does not open with anything Cleo holds.
  const sender = new FrameCryptor();
  await sender.setSendKey(keyAfter, host.myLeaf);
  const cleoReceiver = new FrameCryptor();
  await cleoReceiver.addReceiveKey(await cleo!.group.callKey());
  const meta = { kind: 'video' as const, keyFrame: false };
  assert.equal(await cleoReceiver.decrypt(await sender.encrypt(new Uint8Array(500), meta), meta), undefined);
});

test('two commits for the same epoch: the first in the server’s order wins, the other is stale and retried on the new epoch', async () => {
  const { members, host, clock, gone } = await call(['Ben', 'Cleo']);
  const ben = members[1]!.group;
  const cleo = members[2]!.group;
  // The host leaves; 31 s later Ben and Cleo each approve someone at the same moment.
  gone.add(0);
  const out = await ben.remove([0]);
  ben.applyOwn(out);
  await cleo.process(out.commit);
  clock.t += 31_000;
  const dana = (await readKeyPackage((await newMemberKeys('Dana', clock.t)).bytes))!.keyPackage;
  const eve = (await readKeyPackage((await newMemberKeys('Eve', clock.t)).bytes))!.keyPackage;
  const fromBen = await ben.add([dana]);
  const fromCleo = await cleo.add([eve]);
  assert.equal(fromBen.epoch, fromCleo.epoch);
  // The server orders Ben's first: Cleo processes it, and her own is now stale.
  assert.ok(ben.applyOwn(fromBen));
  assert.equal((await cleo.process(fromBen.commit)).ok, true);
  assert.equal(cleo.applyOwn(fromCleo), false, 'a commit for a past epoch is not applied');
  assert.deepEqual(await ben.process(fromCleo.commit), { ok: false, reason: 'wrong_epoch' });
  // Cleo makes it again on the new epoch, and it goes through.
  const retry = await cleo.add([eve]);
  assert.ok(cleo.applyOwn(retry));
  assert.equal((await ben.process(retry.commit)).ok, true);
  assert.deepEqual(
    ben.members().map((m) => m.name),
    cleo.members().map((m) => m.name),
  );
  assert.equal(ben.members().length, 4);
  assert.equal(await ben.safetyCode(), await cleo.safetyCode());
  void host;
});

test('a commit from someone not allowed to approve is refused and changes nothing', async () => {
  const { members, host, clock } = await call(['Ben', 'Cleo']);
  const ben = members[1]!.group;
  const cleo = members[2]!.group;
  const epoch = host.epoch;
  const code = await host.safetyCode();
  const mallory = await newMemberKeys('Mallory', clock.t);
  // Ben is a guest and the host is here: his Add is refused by everyone.
  const bogus = await ben.add([(await readKeyPackage(mallory.bytes))!.keyPackage]);
  for (const g of [host, cleo]) {
    assert.deepEqual(await g.process(bogus.commit), { ok: false, reason: 'not_allowed' });
    assert.equal(g.epoch, epoch);
    assert.equal(g.members().length, 3);
  }
  assert.equal(await host.safetyCode(), code);
  // Nor may a guest remove a member who is still here (nobody is ejected by a bad message).
  const eject = await ben.remove([0]);
  assert.deepEqual(await cleo.process(eject.commit), { ok: false, reason: 'not_allowed' });
  assert.equal(cleo.members().length, 3);
  // Garbage and an epoch jump are refused too.
  assert.deepEqual(await cleo.process(new Uint8Array([0, 1, 0, 2, 9, 9, 9])), { ok: false, reason: 'malformed' });
  const later = await host.remove([1]);
  host.applyOwn(later);
  const jump = await host.remove([2]);
  assert.deepEqual(await cleo.process(jump.commit), { ok: false, reason: 'wrong_epoch' });
});

test('while the host is away, a member added at least 30 s earlier may approve; a newer one may not', async () => {
  const { members, host, clock, pin, gone } = await call(['Ben']);
  clock.t += 31_000;
  const cleo = await admit(members, host, 'Cleo', clock, pin, gone);
  // The host leaves: anyone may commit its removal once the server reports it gone.
  gone.add(0);
  const ben = members[1]!.group;
  const out = await ben.remove([0]);
  assert.ok(ben.applyOwn(out));
  assert.equal((await cleo.process(out.commit)).ok, true);
  assert.equal(ben.hostPresent, false);
  assert.equal(ben.mayApprove(), true, 'Ben was added 31 s ago');
  assert.equal(cleo.mayApprove(), false, 'Cleo just arrived');
  const dana = await newMemberKeys('Dana', clock.t);
  const early = await cleo.add([(await readKeyPackage(dana.bytes))!.keyPackage]);
  assert.deepEqual(await ben.process(early.commit), { ok: false, reason: 'not_allowed' });
  const fine = await ben.add([(await readKeyPackage(dana.bytes))!.keyPackage]);
  assert.ok(ben.applyOwn(fine));
  assert.equal((await cleo.process(fine.commit)).ok, true);
  assert.equal(cleo.members().length, 3);
});

test('the host re-entering (its KeyPackage signed with the pinned key) may be added by any member', async () => {
  const clock: Clock = { t: Date.UTC(2026, 11, 4, 12) };
  const hostKey = await newSigningKey();
  const pin = keyHash(hostKey.publicKey);
  const gone = new Set<number>();
  const host = await CallGroup.create(await newMemberKeys('Ana', clock.t, hostKey), rules(pin, clock, gone));
  const members = [{ name: 'Ana', keys: await newMemberKeys('x', clock.t), group: host }];
  const ben = await admit(members, host, 'Ben', clock, pin, gone);
  gone.add(0);
  const out = await ben.remove([0]);
  ben.applyOwn(out);
  const again = await newMemberKeys('Ana', clock.t, hostKey);
  const readd = await ben.add([(await readKeyPackage(again.bytes))!.keyPackage]);
  assert.ok(ben.applyOwn(readd));
  const back = await CallGroup.fromWelcome(readd.welcome!, again, rules(pin, clock, gone));
  assert.equal(back.hostPresent, true);
  assert.equal(await back.safetyCode(), await ben.safetyCode());
});

test('a knock that is not a KeyPackage, or whose signature does not verify, does not open', async () => {
  const keys = await newMemberKeys('Ben', Date.now());
  assert.ok(await readKeyPackage(keys.bytes));
  assert.equal(await readKeyPackage(new Uint8Array(40)), undefined);
  const tampered = new Uint8Array(keys.bytes);
  tampered[tampered.length - 70]! ^= 1;
  assert.equal(await readKeyPackage(tampered), undefined);
});
