/**
 * End-to-end encryption core: link keys, sealed cards, SFrame. Fixed
 * vectors pin every deterministic output; the derivation vectors were checked
 * once against an independent node:crypto computation (HKDF/HMAC/AES-GCM).
 * Failure messages carry lengths and booleans only, never key or frame bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CallKey,
  decodeSecret,
  deriveLinkKeys,
  encodeSecret,
  linkFragment,
  newCallKey,
  newLinkSecret,
  openCard,
  parseLinkFragment,
  sealCard,
  sframeBaseKey,
  signLinkInfo,
  toBase64url,
  verifyLinkInfo,
} from '../src/e2ee/keys.js';
import {
  clearByteCount,
  decodeHeader,
  deriveKeySalt,
  encodeHeader,
  FrameCryptor,
  type FrameMeta,
  kidFor,
  sframeDecrypt,
  sframeEncrypt,
  type SframeKey,
  TAG_BYTES,
} from '../src/e2ee/sframe.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
/** Compares bytes without putting them in a failure message. */
function sameBytes(actual: Uint8Array | undefined, expected: Uint8Array, what: string): void {
  assert.ok(actual !== undefined, `${what}: got nothing`);
  assert.equal(actual.length, expected.length, `${what}: length`);
  assert.ok(hex(actual) === hex(expected), `${what}: bytes differ (length ${expected.length})`);
}

// ------------------------------------------------------------------ fixed inputs

const SECRET = new Uint8Array(32).map((_, i) => i); // 000102…1f
const LINK_ID = 'AAECAwQFBgcICQoLDA0ODw';
const LINK_INFO = { name: 'Team sync', hostName: 'Ada Lovelace' };
const CALL_KEY: CallKey = { secret: new Uint8Array(32).map((_, i) => 0xa0 + i), epoch: 7 };
const SENDER = 0x123456789abc;
const FRAME = new Uint8Array(24).map((_, i) => i);
const VIDEO_KEY: FrameMeta = { kind: 'video', keyFrame: true };
const VIDEO_DELTA: FrameMeta = { kind: 'video', keyFrame: false };
const AUDIO: FrameMeta = { kind: 'audio', keyFrame: false };

const VECTORS = {
  // HMAC-SHA-256 with auth key = HKDF-SHA-256(SECRET, salt "", info "linkcall v1 auth key"), over
  // "linkcall v1 link info" ‖ (u32 length ‖ UTF-8) of linkId, name, hostName.
  linkInfoMac: 'eDnIJ2vNn4UMOTwmSceTCoDA9-Zr22kz76PcdrTobKo',
  // FrameCryptor with CALL_KEY, SENDER: clear bytes ‖ header (KID = SENDER ‖ 07) ‖ ciphertext of the whole frame ‖ tag.
  // Remade when the ciphertext came to cover the clear bytes too (the receiver no longer assembles frames).
  videoKeyFrameCtr0:
    '00010203040506070809' + 'e0123456789abc07' + '684f989574b5c707e573e1845aa2108660cbab443e8031d90c271f3de81a5e1ada92a9ad7ec4dc9d',
  audioFrameCtr1: '00' + 'e1123456789abc07' + '8010fa3ecd99cd52fc67450014dc15c1ace4cab330a6b7b666fc0fd55f005b0e7b062c9c8dd51912',
  // CALL_KEY's secret, FRAME. Sender index 0, epoch 3: the KID (3) fits in the config byte.
  smallIndexAudioCtr0: '00' + '30' + 'f7b7f4f2920622ce67cef811ec507553a3124db79a92bda9f0af6f6cbcc64ea54e4f7e10bfae2b34',
  smallIndexAudioCtr9: '00' + '3809' + 'bce51a9da0a6b655d33621766f0ee785df50f7225eb57d9039dd1ad7d21078e511cd8466e70bfaf0',
  // Sender index 1000 (an MLS leaf index, say), epoch 7: KID 0x03e807.
  leafIndexDeltaCtr0: '000102' + 'a003e807' + '03261c482c9f7effa4599c067cc4a3712bb60388ab2e72a1b8e0ca88fb6cf7d7c28fa8cddb4df5dc',
  leafIndexDeltaCtr300: '000102' + 'a903e807012c' + 'edbc51bccc84a9d8dae2859c0d725ba275b20df2192064c790fe2fd48248eabfd5b20c676f41a65d',
};

/** Replace one character in the middle of a base64url string by another valid one. */
function tamper(text: string): string {
  const i = Math.floor(text.length / 2);
  return text.slice(0, i) + (text[i] === 'A' ? 'B' : 'A') + text.slice(i + 1);
}

/** A sender index as the SFrame layer takes it (an MLS leaf index in calls; any value up to 2⁴⁸ here). */
function newSenderIndex(): number {
  return Math.floor(Math.random() * 2 ** 48);
}

// ------------------------------------------------------------------ link secret and link keys

test('a link secret is 32 random bytes written as 43 base64url characters, and reads back', () => {
  const a = newLinkSecret();
  const b = newLinkSecret();
  assert.equal(a.length, 32);
  assert.ok(hex(a) !== hex(b), 'two secrets are different');
  const text = encodeSecret(a);
  assert.ok(/^[A-Za-z0-9_-]{43}$/.test(text), '43 base64url characters');
  sameBytes(decodeSecret(text), a, 'decoded secret');
  assert.ok(encodeSecret(SECRET) === 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8', 'fixed secret encodes as expected');
});

test('decodeSecret refuses malformed or wrong-length text', () => {
  const good = encodeSecret(SECRET);
  for (const bad of ['', good.slice(1), good + 'A', good.slice(0, 42) + '=', good.slice(0, 42) + '+', good.slice(0, 42) + 'B', ' ' + good.slice(1)]) {
    assert.equal(decodeSecret(bad), undefined, `refused (length ${bad.length})`);
  }
});

test('link keys are fixed by the secret: the link-info MAC matches the vector', async () => {
  const keys = await deriveLinkKeys(SECRET);
  assert.ok((await signLinkInfo(keys, LINK_ID, LINK_INFO)) === VECTORS.linkInfoMac, 'link-info MAC matches the vector');
  assert.equal(keys.authKey.extractable, false);
  assert.equal(keys.lobbyKey.extractable, false);
});

test('a guest verifies the link name and host name, and notices any change or another secret', async () => {
  const keys = await deriveLinkKeys(SECRET);
  const other = await deriveLinkKeys(newLinkSecret());
  const mac = VECTORS.linkInfoMac;
  assert.equal(await verifyLinkInfo(keys, LINK_ID, LINK_INFO, mac), true);
  assert.equal(await verifyLinkInfo(keys, LINK_ID, { ...LINK_INFO, hostName: 'Mallory' }, mac), false);
  assert.equal(await verifyLinkInfo(keys, LINK_ID, { ...LINK_INFO, name: 'Team sync!' }, mac), false);
  // Field boundaries are part of the MAC: moving characters between fields changes it.
  assert.equal(await verifyLinkInfo(keys, LINK_ID, { name: 'Team syncA', hostName: 'da Lovelace' }, mac), false);
  assert.equal(await verifyLinkInfo(keys, 'BBECAwQFBgcICQoLDA0ODw', LINK_INFO, mac), false);
  assert.equal(await verifyLinkInfo(keys, LINK_ID, LINK_INFO, tamper(mac)), false);
  assert.equal(await verifyLinkInfo(keys, LINK_ID, LINK_INFO, 'not a mac'), false);
  assert.equal(await verifyLinkInfo(other, LINK_ID, LINK_INFO, mac), false);
});

// ------------------------------------------------------------------ knocks

test('a sealed card opens only with the same secret and link, untouched', async () => {
  const keys = await deriveLinkKeys(SECRET);
  const payload = new Uint8Array(330).map((_, i) => i & 0xff);
  const sealed = await sealCard(keys, LINK_ID, payload);
  assert.deepEqual(await openCard(keys, LINK_ID, sealed), payload, 'round trip');
  assert.equal(await openCard(await deriveLinkKeys(newLinkSecret()), LINK_ID, sealed), undefined, 'wrong secret');
  assert.equal(await openCard(keys, LINK_ID, tamper(sealed)), undefined, 'tampered');
  assert.equal(await openCard(keys, 'BBECAwQFBgcICQoLDA0ODw', sealed), undefined, 'other linkId');
  assert.equal(await openCard(keys, LINK_ID, sealed.slice(0, 40)), undefined, 'truncated');
  assert.equal(await openCard(keys, LINK_ID, '%%%'), undefined, 'not base64url');
  assert.ok((await sealCard(keys, LINK_ID, payload)) !== sealed, 'fresh IV each time');
});

test('the sealed card does not tell the server how long the name is', async () => {
  const keys = await deriveLinkKeys(SECRET);
  const short = await sealCard(keys, LINK_ID, new Uint8Array(330));
  const long = await sealCard(keys, LINK_ID, new Uint8Array(330 + 3 * 64));
  assert.equal(short.length, long.length);
});

test('a link fragment carries the secret and the host key hash, and nothing less', () => {
  const hash = 'A'.repeat(43);
  const fragment = linkFragment(SECRET, hash);
  assert.deepEqual(parseLinkFragment(`#${fragment}`), { secret: SECRET, hostKeyHash: hash });
  assert.equal(parseLinkFragment(`#k=${encodeSecret(SECRET)}`), undefined, 'no host key hash');
  assert.equal(parseLinkFragment(`#h=${hash}`), undefined, 'no secret');
  assert.equal(parseLinkFragment(`#k=${encodeSecret(SECRET)}&h=${hash.slice(1)}`), undefined, 'short hash');
});

test('SFrame headers match RFC 9605 test vectors', () => {
  const cases: [bigint, bigint, string][] = [
    [0n, 0n, '00'],
    [0n, 0xffn, '08ff'],
    [0n, 0x10000n, '0a010000'],
    [0xffffffffffffffffn, 0n, 'f0ffffffffffffffff'],
    [0xffffffffffffffffn, 0x100n, 'f9ffffffffffffffff0100'],
    [0x123n, 0x4567n, '9901234567'],
  ];
  for (const [kid, ctr, header] of cases) {
    assert.ok(hex(encodeHeader(kid, ctr)) === header, `header of case ${cases.findIndex((c) => c[2] === header)}`);
    assert.deepEqual(decodeHeader(unhex(header)), { kid, ctr, length: header.length / 2 });
  }
  assert.equal(decodeHeader(unhex('f0ffff')), undefined, 'truncated KID');
});

test('SFrame encryption matches the RFC 9605 AES_128_GCM_SHA256_128 vector', async () => {
  const baseKey = unhex('000102030405060708090a0b0c0d0e0f');
  const metadata = unhex('4945544620534672616d65205747');
  const plaintext = unhex('64726166742d696574662d736672616d652d656e63');
  const expected = unhex('9901234567b7412c2513a1b66dbb48841bbaf17f598751176ad847681a69c6d0b091c07018ce4adb34eb');
  const sender = await deriveKeySalt(baseKey, 0x123n, 'encrypt');
  assert.ok(hex(sender.salt) === '75234edefe07819026751816', 'sframe_salt matches');
  sameBytes(await sframeEncrypt(sender, 0x123n, 0x4567, metadata, plaintext), expected, 'ciphertext');
  const receiver = await deriveKeySalt(baseKey, 0x123n, 'decrypt');
  sameBytes(await sframeDecrypt(receiver, metadata, expected), plaintext, 'plaintext');
  assert.equal(await sframeDecrypt(receiver, unhex('00'), expected), undefined, 'other metadata');
});

test('FrameCryptor output matches the fixed vector (KID = sender index ‖ epoch byte)', async () => {
  const cryptor = new FrameCryptor();
  await cryptor.setSendKey(CALL_KEY, SENDER);
  assert.ok(kidFor(SENDER, 7) === 0x123456789abc07n, 'KID layout');
  sameBytes(await cryptor.encrypt(FRAME, VIDEO_KEY), unhex(VECTORS.videoKeyFrameCtr0), 'key frame, CTR 0');
  sameBytes(await cryptor.encrypt(FRAME, AUDIO), unhex(VECTORS.audioFrameCtr1), 'audio frame, CTR 1');
});

async function pair(key: CallKey = newCallKey(1), opts: ConstructorParameters<typeof FrameCryptor>[0] = {}) {
  const sender = new FrameCryptor();
  const receiver = new FrameCryptor(opts);
  await sender.setSendKey(key, newSenderIndex());
  await receiver.addReceiveKey(key);
  return { sender, receiver, key };
}

function randomFrame(size: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(size));
}

test('frames round-trip for key frames, delta frames and audio', async () => {
  const { sender, receiver } = await pair();
  for (const [meta, size] of [[VIDEO_KEY, 20_000], [VIDEO_DELTA, 2_000], [AUDIO, 120], [VIDEO_DELTA, 2], [AUDIO, 0]] as const) {
    const frame = randomFrame(size);
    const sealed = await sender.encrypt(frame, meta);
    sameBytes(await receiver.decrypt(sealed, meta), frame, `${meta.kind} ${size} B`);
  }
});

test('codec header bytes stay in clear and are authenticated', async () => {
  const { sender, receiver } = await pair();
  for (const [meta, clear] of [[VIDEO_KEY, 10], [VIDEO_DELTA, 3], [AUDIO, 1]] as const) {
    const frame = randomFrame(1500);
    const sealed = await sender.encrypt(frame, meta);
    sameBytes(sealed.subarray(0, clear), frame.subarray(0, clear), `${clear} clear bytes`);
    assert.ok(hex(sealed.subarray(clear, clear + 40)) !== hex(frame.subarray(clear, clear + 40)), 'the rest is encrypted');
    for (let i = 0; i < clear; i++) {
      const tampered = sealed.slice();
      tampered[i]! ^= 0x01;
      assert.equal(await receiver.decrypt(tampered, meta), undefined, `clear byte ${i} changed`);
    }
    const body = sealed.slice();
    body[body.length - 20]! ^= 0x80;
    assert.equal(await receiver.decrypt(body, meta), undefined, 'ciphertext changed');
    const kid = sealed.slice();
    kid[clear + 3]! ^= 0x01;
    assert.equal(await receiver.decrypt(kid, meta), undefined, 'KID changed');
    sameBytes(await receiver.decrypt(sealed, meta), frame, 'untouched frame');
  }
});

test('a frame is accepted once: replays from the SFU are dropped', async () => {
  const { sender, receiver } = await pair();
  const sealed = await Promise.all(Array.from({ length: 50 }, () => sender.encrypt(randomFrame(500), VIDEO_DELTA)));
  // Counters are taken before any await, so concurrent frames never share a nonce.
  const headers = new Set(sealed.map((s) => hex(s.subarray(3, 3 + 9))));
  assert.equal(headers.size, 50);
  for (const s of sealed.reverse()) assert.ok(await receiver.decrypt(s, VIDEO_DELTA), 'out of order is fine');
  assert.equal(await receiver.decrypt(sealed[0]!, VIDEO_DELTA), undefined, 'replayed');
});

test('frames are dropped without a key: no key, unknown epoch, another call', async () => {
  const { sender, key } = await pair(newCallKey(5));
  const frame = await sender.encrypt(randomFrame(800), VIDEO_DELTA);
  assert.equal(await new FrameCryptor().decrypt(frame, VIDEO_DELTA), undefined, 'no key at all');
  const older = new FrameCryptor();
  await older.addReceiveKey(newCallKey(3)); // epoch 5 comes only from the group
  assert.equal(await older.decrypt(frame, VIDEO_DELTA), undefined, 'two epochs ahead');
  const otherCall = new FrameCryptor();
  await otherCall.addReceiveKey(newCallKey(5));
  assert.equal(await otherCall.decrypt(frame, VIDEO_DELTA), undefined, 'same epoch, other secret');
  const same = new FrameCryptor();
  await same.addReceiveKey(key);
  assert.ok(await same.decrypt(frame, VIDEO_DELTA), 'with the key');
  assert.equal(await same.decrypt(unhex('0102'), VIDEO_DELTA), undefined, 'too short');
  await assert.rejects(new FrameCryptor().encrypt(randomFrame(10), AUDIO), 'no send key: nothing is sent in clear');
});

test('after a new epoch the previous one stays readable for the grace period, and not after', async () => {
  let now = 1_000;
  const first = newCallKey(1);
  const { sender, receiver } = await pair(first, { graceMs: 5000, now: () => now });
  const oldFrame = () => sender.encrypt(randomFrame(300), VIDEO_DELTA);
  assert.ok(await receiver.decrypt(await oldFrame(), VIDEO_DELTA), 'epoch 1 before rotation');

  const rotated = newCallKey(2); // a Remove commit: a fresh epoch for those who stay
  await receiver.addReceiveKey(rotated);
  const newSender = new FrameCryptor();
  await newSender.setSendKey(rotated, newSenderIndex());
  assert.ok(await receiver.decrypt(await newSender.encrypt(randomFrame(300), VIDEO_DELTA), VIDEO_DELTA), 'epoch 2');
  now += 4_999;
  assert.ok(await receiver.decrypt(await oldFrame(), VIDEO_DELTA), 'epoch 1 within the grace period');
  now += 1;
  assert.equal(await receiver.decrypt(await oldFrame(), VIDEO_DELTA), undefined, 'epoch 1 after the grace period');
  assert.ok(await receiver.decrypt(await newSender.encrypt(randomFrame(300), VIDEO_DELTA), VIDEO_DELTA), 'epoch 2 still');
});

test('a receiver reads only the epochs it was given: a newcomer cannot read the past, and nothing moves it forward on its own', async () => {
  const before = newCallKey(4);
  const { sender, receiver } = await pair(before);
  const pastFrame = await sender.encrypt(randomFrame(700), VIDEO_DELTA);
  assert.ok(await receiver.decrypt(pastFrame, VIDEO_DELTA));
  // The next MLS epoch: a fresh secret from the group, not a step anyone could compute from epoch 4
  // (a member removed at epoch 5 holds epoch 4's key).
  const after = newCallKey(5);
  await sender.setSendKey(after, newSenderIndex());
  const frame = await sender.encrypt(randomFrame(700), VIDEO_DELTA);
  assert.equal(await receiver.decrypt(frame, VIDEO_DELTA), undefined, 'not before its key is added');
  await receiver.addReceiveKey(after);
  assert.ok(await receiver.decrypt(await sender.encrypt(randomFrame(700), VIDEO_DELTA), VIDEO_DELTA), 'then it reads epoch 5');
  const newcomer = new FrameCryptor();
  await newcomer.addReceiveKey(after);
  assert.equal(await newcomer.decrypt(pastFrame, VIDEO_DELTA), undefined, 'the newcomer cannot read epoch 4');
});

test('a frame of the next epoch under a fresh secret does not move a receiver forward', async () => {
  let now = 0;
  const current = newCallKey(1);
  const { sender, receiver } = await pair(current, { graceMs: 5000, now: () => now });
  const rotatedSender = new FrameCryptor();
  await rotatedSender.setSendKey(newCallKey(2), newSenderIndex()); // its commit has not reached the receiver yet
  assert.equal(await receiver.decrypt(await rotatedSender.encrypt(randomFrame(400), VIDEO_DELTA), VIDEO_DELTA), undefined);
  now += 60_000;
  assert.ok(await receiver.decrypt(await sender.encrypt(randomFrame(400), VIDEO_DELTA), VIDEO_DELTA), 'epoch 1 still current');
});

test('each frame grows by its clear bytes, the header and the tag: at most 30 bytes but for key frames', async () => {
  const { sender } = await pair(newCallKey(200)); // a 48-bit sender index: the longest KID
  for (const [meta, size, most] of [[VIDEO_KEY, 25_000, 40], [VIDEO_DELTA, 1_500, 30], [AUDIO, 100, 30]] as const) {
    const added = (await sender.encrypt(randomFrame(size), meta)).length - size;
    assert.ok(added <= most, `added ${added} bytes`);
  }
  // With an MLS leaf index (one byte), a key frame grows by 10 + 1 + 2 + ≤ 3 + 16 ≤ 32 bytes: 0.1 % of 25 KB.
  const leaf = new FrameCryptor();
  await leaf.setSendKey(newCallKey(200), 12);
  assert.ok((await leaf.encrypt(randomFrame(25_000), VIDEO_KEY)).length - 25_000 <= 32);
  assert.ok((await leaf.encrypt(randomFrame(100), AUDIO)).length - 100 <= 23);
  // Worst header + tag up to 2³² frames from one sender (a year at 140 frames/s): 1 + 7 + 4 + 16.
  const worst = encodeHeader(kidFor(2 ** 48 - 1, 255), 2n ** 32n - 1n).length + TAG_BYTES;
  assert.equal(worst, 28);
});

test('a frame whose clear bytes were changed on the way does not open', async () => {
  const { sender, receiver } = await pair();
  for (const meta of [VIDEO_KEY, VIDEO_DELTA, AUDIO]) {
    const frame = randomFrame(1000);
    const sealed = await sender.encrypt(frame, meta);
    const changed = sealed.slice();
    changed[0]! ^= 0x01;
    assert.equal(await receiver.decrypt(changed, meta), undefined, 'clear byte changed');
    sameBytes(await receiver.decrypt(sealed, meta), frame, 'untouched');
  }
});

/** What RFC 9605's encrypt() makes of a FrameCryptor frame: clear bytes ‖ header ‖ ciphertext of the whole frame ‖ tag. */
async function referenceFrame(k: SframeKey, kid: bigint, ctr: number, frame: Uint8Array, meta: FrameMeta): Promise<Uint8Array> {
  const clear = frame.length >= clearByteCount(meta) ? clearByteCount(meta) : 0;
  const sealed = await sframeEncrypt(k, kid, ctr, frame.subarray(0, clear), frame);
  const out = new Uint8Array(clear + sealed.length);
  out.set(frame.subarray(0, clear));
  out.set(sealed, clear);
  return out;
}

test('frames of small sender indexes match the vectors made before, and open', async () => {
  const cases = [
    [0, 3, AUDIO, [[0, VECTORS.smallIndexAudioCtr0], [9, VECTORS.smallIndexAudioCtr9]]],
    [1000, 7, VIDEO_DELTA, [[0, VECTORS.leafIndexDeltaCtr0], [300, VECTORS.leafIndexDeltaCtr300]]],
  ] as const;
  for (const [senderIndex, epoch, meta, vectors] of cases) {
    const key = { secret: CALL_KEY.secret, epoch };
    const sender = new FrameCryptor();
    await sender.setSendKey(key, senderIndex);
    const made = new Map<number, Uint8Array>();
    for (let ctr = 0; ctr <= vectors[vectors.length - 1]![0]; ctr++) made.set(ctr, await sender.encrypt(FRAME, meta));
    const receiver = new FrameCryptor();
    await receiver.addReceiveKey(key);
    for (const [ctr, vector] of vectors) {
      sameBytes(made.get(ctr), unhex(vector), `sender ${senderIndex}, CTR ${ctr}`);
      sameBytes(await receiver.decrypt(unhex(vector), meta), FRAME, `sender ${senderIndex}, CTR ${ctr} opens`);
    }
  }
});

test('for sender indexes from 0 to 2⁴⁸ − 1 and any epoch byte, frames are the RFC 9605 encryption under KID = index ‖ epoch byte', async () => {
  const indexes = [0, 1, 7, 255, 256, 1000, 2 ** 32 + 5, SENDER, 2 ** 48 - 1];
  const epochs = [0, 3, 7, 8, 255, 256 + 9];
  for (const senderIndex of indexes) {
    for (const epoch of epochs) {
      const key: CallKey = { secret: CALL_KEY.secret, epoch };
      const kid = kidFor(senderIndex, epoch);
      const reference = await deriveKeySalt(await sframeBaseKey(key), kid, 'encrypt');
      const sender = new FrameCryptor();
      await sender.setSendKey(key, senderIndex);
      const receiver = new FrameCryptor();
      await receiver.addReceiveKey(key);
      for (let ctr = 0; ctr < 10; ctr++) {
        const meta = [AUDIO, VIDEO_DELTA, VIDEO_KEY][ctr % 3]!;
        const frame = randomFrame(40 + ctr);
        const sealed = await sender.encrypt(frame, meta);
        const what = `index ${senderIndex}, epoch ${epoch}, CTR ${ctr}`;
        sameBytes(sealed, await referenceFrame(reference, kid, ctr, frame, meta), what);
        sameBytes(await receiver.decrypt(sealed, meta), frame, `${what} opens`);
      }
    }
  }
});

test('a sender past 2³² frames still makes the RFC 9605 frames, and receivers open them', async () => {
  const sender = new FrameCryptor();
  await sender.setSendKey(CALL_KEY, 42);
  // Sending 2³² frames would take the test a year: start the counter there instead.
  const start = 2 ** 40 + 2 ** 32 + 0x1234567;
  (sender as unknown as { counter: number }).counter = start;
  const kid = kidFor(42, CALL_KEY.epoch);
  const reference = await deriveKeySalt(await sframeBaseKey(CALL_KEY), kid, 'encrypt');
  const receiver = new FrameCryptor();
  await receiver.addReceiveKey(CALL_KEY);
  for (let i = 0; i < 3; i++) {
    const frame = randomFrame(200);
    const sealed = await sender.encrypt(frame, VIDEO_DELTA);
    sameBytes(sealed, await referenceFrame(reference, kid, start + i, frame, VIDEO_DELTA), `CTR 2⁴⁰ + 2³² + … + ${i}`);
    sameBytes(await receiver.decrypt(sealed, VIDEO_DELTA), frame, `CTR 2⁴⁰ + 2³² + … + ${i} opens`);
    assert.equal(await receiver.decrypt(sealed, VIDEO_DELTA), undefined, 'and only once');
  }
});

test('frames with a counter above 2⁵³ − 1 or a sender index of 2⁴⁸ or more are dropped', async () => {
  const baseKey = await sframeBaseKey(CALL_KEY);
  const receiver = new FrameCryptor();
  await receiver.addReceiveKey(CALL_KEY);
  const frame = randomFrame(100);
  const largestCtr = await referenceFrame(await deriveKeySalt(baseKey, kidFor(9, 7), 'encrypt'), kidFor(9, 7), 2 ** 53 - 1, frame, AUDIO);
  sameBytes(await receiver.decrypt(largestCtr, AUDIO), frame, 'CTR 2⁵³ − 1 opens');
  // encodeHeader takes any 64-bit CTR and KID: build what FrameCryptor would never send.
  const header = (kid: bigint, ctr: bigint) => hex(encodeHeader(kid, ctr));
  const tooBigCtr = unhex(hex(frame.subarray(0, 1)) + header(kidFor(9, 7), 2n ** 53n) + hex(randomFrame(80)));
  assert.equal(await receiver.decrypt(tooBigCtr, AUDIO), undefined, 'CTR 2⁵³');
  const bigIndexKid = (2n ** 48n << 8n) | 7n;
  const k = await deriveKeySalt(baseKey, bigIndexKid, 'encrypt');
  const sealed = await sframeEncrypt(k, bigIndexKid, 1, frame.subarray(0, 1), frame.subarray(1));
  const tooBigIndex = new Uint8Array(1 + sealed.length);
  tooBigIndex.set(frame.subarray(0, 1));
  tooBigIndex.set(sealed, 1);
  assert.equal(await receiver.decrypt(tooBigIndex, AUDIO), undefined, 'sender index 2⁴⁸');
});

test('many frames in flight at once, both ways, all round-trip (frames under one key share scratch buffers)', async () => {
  const { sender, receiver } = await pair();
  const metas = [VIDEO_KEY, VIDEO_DELTA, AUDIO];
  const frames = Array.from({ length: 120 }, (_, i) => randomFrame([20_000, 2_000, 120][i % 3]! + i));
  const sealed = await Promise.all(frames.map((f, i) => sender.encrypt(f, metas[i % 3]!)));
  const opened = await Promise.all(sealed.map((f, i) => receiver.decrypt(f, metas[i % 3]!)));
  opened.forEach((o, i) => sameBytes(o, frames[i]!, `frame ${i}`));
});
