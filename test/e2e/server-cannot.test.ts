// What the server cannot do, shown with real Chromium calls (issue "End-to-end encryption",
// Done-when 3 and 5; docs/SECURITY.md "A malicious server").
//
// 1. Read media: the test attaches its own subscriber to a live call through the server's own
//    SFU API, receives the call's RTP, reassembles the frames and tries every key it can make
//    without the link secret: not one frame opens, and what follows the clear VP8 header bytes
//    is SFrame ciphertext, not VP8. A link holder admitted by the host decrypts the very same
//    frames (so the reassembly is right), and their plaintext decodes as VP8 in a real decoder.
// 2. Learn the link secret or a guest's name: every HTTP request and WebSocket frame the server
//    sees, every log line it writes and its database files, captured over a whole call, hold
//    neither (in any usual encoding).
// 3. Let anyone in: a Welcome forged, altered or replayed by the server is refused by the guest's
//    page, which says so and plays no video; names the server makes up are never shown.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import nodeDataChannel, { type Track } from 'node-datachannel';
import type { Browser, Page } from 'playwright-core';
import {
  deriveLinkKeys,
  newCallKey,
  newLinkSecret,
  openCard,
  parseLinkFragment,
  sframeBaseKey,
  toBase64url,
  type CallKey,
  type LinkKeys,
} from '../../src/e2ee/keys.js';
import { CallGroup, newMemberKeys, newSigningKey, readKeyPackage } from '../../src/e2ee/mls.js';
import { decodeHeader, deriveKeySalt, FrameCryptor, sframeDecrypt, type MediaKind, type SframeKey } from '../../src/e2ee/sframe.js';
import { ERRORS } from '../../src/protocol/errors.js';
import type { TapEvent } from '../../src/server/app.js';
import { holdUntilClosed } from '../../src/server/media/live-tracks.js';
import { waitForGathering } from '../../src/server/media/gathering.js';
import { shutdownMediaEngine, type Producer, type Router } from '../../src/server/media/router.js';
import { isRtcp } from '../../src/server/media/rtp.js';
import { DOWNSTREAM } from '../../src/server/media/sdp.js';
import type { CallMedia } from '../../src/server/sfu/call-media.js';
import type { Room } from '../../src/server/rooms/room.js';
import { launchChromium, newPerson, waitForPlayingVideo } from '../support/browser.js';
import { guestKnocks, hostEnters, signUpAndCreateLink, text } from '../support/flow.js';
import { connectClient, startServer, until, type TestServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

// ------------------------------------------------------------------ the browser flow


function parseLink(link: string): { linkId: string; encoded: string; secret: Uint8Array; hostKeyHash: string } {
  const m = /\/join\/([A-Za-z0-9_-]{22})#(.*)$/.exec(link);
  assert.ok(m, link);
  const fragment = parseLinkFragment(m[2]!);
  assert.ok(fragment);
  return { linkId: m[1]!, encoded: new URLSearchParams(m[2]!).get('k')!, secret: fragment.secret, hostKeyHash: fragment.hostKeyHash };
}

// ------------------------------------------------------------------ RTP and VP8

interface RtpPacket {
  ssrc: number;
  pt: number;
  seq: number;
  ts: number;
  marker: boolean;
  payload: Buffer;
}

function parseRtp(buf: Buffer): RtpPacket | undefined {
  if (buf.length < 12 || buf[0]! >> 6 !== 2 || isRtcp(buf)) return undefined;
  let offset = 12 + 4 * (buf[0]! & 0x0f);
  if (buf[0]! & 0x10) {
    if (offset + 4 > buf.length) return undefined;
    offset += 4 + 4 * buf.readUInt16BE(offset + 2);
  }
  const end = buf[0]! & 0x20 ? buf.length - buf[buf.length - 1]! : buf.length;
  if (offset > end) return undefined;
  return {
    ssrc: buf.readUInt32BE(8),
    pt: buf[1]! & 0x7f,
    seq: buf.readUInt16BE(2),
    ts: buf.readUInt32BE(4),
    marker: (buf[1]! & 0x80) !== 0,
    payload: buf.subarray(offset, end),
  };
}

/** RFC 7741 payload descriptor: its length, and whether this packet starts a frame. */
function vp8Descriptor(p: Buffer): { length: number; frameStart: boolean } {
  let i = 0;
  const b0 = p[i++]!;
  if (b0 & 0x80) {
    const b1 = p[i++]!;
    if (b1 & 0x80) i += p[i]! & 0x80 ? 2 : 1; // PictureID, 7 or 15 bits
    if (b1 & 0x40) i++; // TL0PICIDX
    if (b1 & 0x30) i++; // TID / KEYIDX
  }
  return { length: i, frameStart: (b0 & 0x10) !== 0 && (b0 & 0x07) === 0 };
}

interface Frame {
  ssrc: number;
  kind: MediaKind;
  /** Extended sequence number of the first packet: frame order per SSRC. */
  order: number;
  keyFrame: boolean;
  data: Uint8Array;
}

/**
 * The encoded frames, as the sender's encoder (after its E2EE transform) produced them:
 * VP8 packets with one timestamp, from the one with S=1/PID=0 to the one with the marker bit,
 * without gaps; each Opus packet is a frame. Incomplete frames are left out.
 */
function assembleFrames(packets: readonly RtpPacket[]): Frame[] {
  const frames: Frame[] = [];
  const lastExt = new Map<number, number>();
  const seenAudio = new Set<string>();
  const videoGroups = new Map<string, { ssrc: number; ext: number; p: RtpPacket }[]>();
  for (const p of packets) {
    if (p.payload.length === 0) continue; // padding only: no media
    const prev = lastExt.get(p.ssrc);
    let ext = p.seq;
    if (prev !== undefined) {
      const delta = ((p.seq - (prev & 0xffff) + 0x8000) & 0xffff) - 0x8000;
      ext = prev + delta;
    }
    lastExt.set(p.ssrc, Math.max(prev ?? ext, ext));
    if (p.pt === DOWNSTREAM.audio.payloadType) {
      const id = `${p.ssrc}/${ext}`;
      if (seenAudio.has(id)) continue;
      seenAudio.add(id);
      frames.push({ ssrc: p.ssrc, kind: 'audio', order: ext, keyFrame: false, data: new Uint8Array(p.payload) });
    } else if (p.pt === DOWNSTREAM.video.payloadType) {
      const key = `${p.ssrc}/${p.ts}`;
      let group = videoGroups.get(key);
      if (!group) videoGroups.set(key, (group = []));
      group.push({ ssrc: p.ssrc, ext, p });
    }
  }
  for (const group of videoGroups.values()) {
    const bySeq = new Map(group.map((g) => [g.ext, g])); // NACK retransmissions arrive twice
    const ordered = [...bySeq.values()].sort((a, b) => a.ext - b.ext);
    const first = ordered[0]!;
    const last = ordered[ordered.length - 1]!;
    if (!vp8Descriptor(first.p.payload).frameStart || !last.p.marker) continue;
    if (last.ext - first.ext + 1 !== ordered.length) continue;
    const data = Buffer.concat(ordered.map((g) => g.p.payload.subarray(vp8Descriptor(g.p.payload).length)));
    // VP8 frame tag, first byte, bit 0: 0 = key frame (RFC 6386 §9.1). It is in the clear bytes.
    frames.push({ ssrc: first.ssrc, kind: 'video', order: first.ext, keyFrame: (data[0]! & 1) === 0, data: new Uint8Array(data) });
  }
  return frames.sort((a, b) => a.ssrc - b.ssrc || a.order - b.order);
}

const CLEAR_BYTES = (f: Frame) => (f.kind === 'audio' ? 1 : f.keyFrame ? 10 : 3);

/** The SFrame header right after the clear codec bytes: KID = sender index ‖ epoch byte. */
function sframeHeaderOf(f: Frame): { senderIndex: bigint; epochByte: number; ctr: bigint; length: number } | undefined {
  const h = decodeHeader(f.data, CLEAR_BYTES(f));
  if (!h) return undefined;
  return { senderIndex: h.kid >> 8n, epochByte: Number(h.kid & 0xffn), ctr: h.ctr, length: h.length };
}

/** A receiver holding `keys` (one per epoch), as the app's frame worker would hold them. */
async function cryptorWith(keys: CallKey[]): Promise<FrameCryptor> {
  const cryptor = new FrameCryptor({ graceMs: Infinity });
  for (const key of keys) await cryptor.addReceiveKey(key);
  return cryptor;
}

/**
 * Runs in the page: decodes frames in order with WebCodecs' VP8 decoder (Chromium's libvpx),
 * restarting at the next key frame after an error, and returns for each frame its picture as
 * the average luma of a 16×12 grid (or null when none came out). A string, so that the
 * test's TypeScript transform adds nothing the page lacks.
 */
const DECODE_VP8 = `async (input) => {
  const pictures = input.map(() => null);
  const errors = [];
  const copies = [];
  function summarize(frame) {
    const index = frame.timestamp;
    const width = frame.codedWidth;
    const height = frame.codedHeight;
    const buffer = new Uint8Array(frame.allocationSize());
    copies.push(frame.copyTo(buffer).then((layout) => {
      const { offset, stride } = layout[0];
      const luma = [];
      for (let gy = 0; gy < 12; gy++) {
        for (let gx = 0; gx < 16; gx++) {
          let sum = 0;
          let n = 0;
          for (let y = Math.floor((gy * height) / 12); y < Math.floor(((gy + 1) * height) / 12); y += 2) {
            for (let x = Math.floor((gx * width) / 16); x < Math.floor(((gx + 1) * width) / 16); x += 2) {
              sum += buffer[offset + y * stride + x];
              n++;
            }
          }
          luma.push(n ? sum / n : 0);
        }
      }
      pictures[index] = { width, height, luma };
      frame.close();
    }));
  }
  function make() {
    const d = new VideoDecoder({ output: summarize, error: (e) => void errors.push(String(e)) });
    d.configure({ codec: 'vp8' });
    return d;
  }
  let decoder = make();
  for (let i = 0; i < input.length; i++) {
    const f = input[i];
    // After an error the decoder is closed; only a key frame can start a new one.
    if (decoder.state === 'closed') {
      if (!f.keyFrame) continue;
      decoder = make();
    }
    const data = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
    try {
      decoder.decode(new EncodedVideoChunk({ type: f.keyFrame ? 'key' : 'delta', timestamp: i, data }));
    } catch (e) {
      errors.push(String(e));
    }
    // Let the decoder work (and report errors) before the next frame.
    await new Promise((r) => setTimeout(r, 0));
  }
  if (decoder.state !== 'closed') await decoder.flush().catch((e) => void errors.push(String(e)));
  await Promise.all(copies);
  if (decoder.state !== 'closed') decoder.close();
  return { pictures, errors };
}`;

interface Decoded {
  pictures: ({ width: number; height: number; luma: number[] } | null)[];
  errors: string[];
}

async function decodeVp8(page: Page, frames: { data: Uint8Array; keyFrame: boolean }[]): Promise<Decoded> {
  const input = frames.map((f) => ({ data: Buffer.from(f.data).toString('base64'), keyFrame: f.keyFrame }));
  return page.evaluate(`(${DECODE_VP8})(${JSON.stringify(input)})`) as Promise<Decoded>;
}

function psnr(a: number[], b: number[]): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  const mse = se / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

// ------------------------------------------------------------------ the subscriber

interface Eavesdropper {
  packets: RtpPacket[];
  negotiationErrors: unknown[];
  describe(): string;
  close(): void;
}

/**
 * A subscriber of the call made through the server's own media API: a SubscribeTransport on the
 * call's Router consuming every producer, answered by a node-datachannel peer that keeps every
 * RTP packet it receives. This is what anyone with the server's access gets.
 */
function eavesdrop(router: Router): Eavesdropper {
  const packets: RtpPacket[] = [];
  const negotiationErrors: unknown[] = [];
  const pc = new nodeDataChannel.PeerConnection('eavesdropper', { iceServers: [], bindAddress: '127.0.0.1' });
  const tracks: Track[] = [];
  pc.onTrack((track) => {
    holdUntilClosed(track);
    tracks.push(track);
    track.onMessage((buf) => {
      const p = parseRtp(Buffer.from(buf));
      if (p) packets.push(p);
    });
  });
  let negotiation = Promise.resolve();
  let closed = false;
  const sub = router.createSubscribeTransport('eavesdropper', (offer) => {
    negotiation = negotiation
      .then(async () => {
        pc.setRemoteDescription(offer, 'offer');
        await waitForGathering(pc);
        await sub.setAnswer(pc.localDescription()!.sdp);
      })
      .catch((err: unknown) => void negotiationErrors.push(err));
  });
  const consume = (p: Producer) => void sub.consume(p);
  for (const p of router.producers.values()) consume(p);
  router.on('producer', consume);
  return {
    packets,
    negotiationErrors,
    describe: () => `${packets.length} packets, subscriber ${pc.state()}/${sub.closed ? 'closed' : 'open'}, negotiation errors: ${negotiationErrors.map(String).join('; ') || 'none'}`,
    close() {
      if (closed) return;
      closed = true;
      router.off('producer', consume);
      sub.close();
      // Closing each track explicitly releases its message callback, which would otherwise
      // keep the process alive until the wrapper is garbage-collected.
      for (const track of tracks) {
        try {
          track.close();
        } catch {
          // already gone with the connection
        }
      }
      pc.close();
    },
  };
}

function perSender(frames: readonly Frame[], pick: (f: Frame) => boolean = () => true): Map<number, Frame[]> {
  const out = new Map<number, Frame[]>();
  for (const f of frames) {
    if (!pick(f)) continue;
    let list = out.get(f.ssrc);
    if (!list) out.set(f.ssrc, (list = []));
    list.push(f);
  }
  return out;
}

// ------------------------------------------------------------------ capture

/**
 * The byte strings a value would show up as: raw, hex, and base64 / base64url at each of the
 * three alignments it could have inside a longer encoded string (minus the edge characters
 * that depend on the neighbouring bytes).
 */
function encodings(value: Buffer): Buffer[] {
  const out = [value, Buffer.from(value.toString('hex')), Buffer.from(value.toString('hex').toUpperCase())];
  for (const shift of [0, 1, 2]) {
    for (const encoding of ['base64', 'base64url'] as const) {
      const text = Buffer.concat([Buffer.alloc(shift), value]).toString(encoding).replace(/=+$/, '');
      out.push(Buffer.from(text.slice(shift ? 4 : 0, -4)));
    }
  }
  return out;
}

interface Haystack {
  where: string;
  bytes: Buffer;
}
interface Needle {
  what: string;
  bytes: Buffer;
  /** Compared ignoring ASCII case. */
  caseless?: boolean;
}

function occurrences(haystacks: readonly Haystack[], needles: readonly Needle[]): string[] {
  const found: string[] = [];
  for (const h of haystacks) {
    const lower = Buffer.from(h.bytes.toString('latin1').toLowerCase(), 'latin1');
    for (const n of needles) {
      const hit = n.caseless ? lower.includes(Buffer.from(n.bytes.toString('latin1').toLowerCase(), 'latin1')) : h.bytes.includes(n.bytes);
      if (hit) found.push(`${n.what} in ${h.where}`);
    }
  }
  return found;
}

// ------------------------------------------------------------------ the tests

describe('what the server cannot do, in Chromium', { timeout: 175_000 }, () => {
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let browser: Browser;
  const servers: TestServer[] = [];
  /** A person (browser context) whose context closes when the test ends, however it ends. */
  const person = async (t: TestContext, url: string) => {
    const p = await newPerson(browser, url);
    t.after(() => p.context.close().catch(() => {}));
    return p;
  };

  before(async () => {
    chromium = await launchChromium();
    browser = chromium.browser;
  });
  after(async () => {
    await chromium?.close();
    for (const s of servers) await s.close();
    shutdownMediaEngine();
  });

  it('a subscriber with only what the server has gets ciphertext: no frame opens, no VP8 body, while the call plays', async (t) => {
    /** Every MLS commit and Welcome the server relayed. */
    const relayed: Buffer[] = [];
    const server = await startServer({
      tap: (e) => {
        if (e.kind !== 'ws-in') return;
        const m = JSON.parse(e.data.toString('utf8')) as { commit?: string; welcome?: string };
        for (const b64 of [m.commit, m.welcome]) if (b64) relayed.push(Buffer.from(b64, 'base64url'));
      },
    });
    servers.push(server);
    const host = await person(t, server.url);
    const guest = await person(t, server.url);
    const link = await signUpAndCreateLink(host.page, 'olga', 'Board meeting');
    const { linkId, secret, hostKeyHash } = parseLink(link);
    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, 'Pavel');
    await host.page.getByRole('button', { name: 'Approve Pavel' }).click();
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Pavel"]', 40_000);
    await waitForPlayingVideo(guest.page, 'video[aria-label="Video of olga"]', 40_000);

    // The server's own objects: the room of the link and its SFU router.
    const room = server.app.rooms.get(linkId) as Room;
    const router: Router = (room.media as CallMedia).router;
    const videoProducers = () => [...router.producers.values()].filter((p) => p.kind === 'video');
    await waitFor('the video of host and guest at the SFU', () => videoProducers().length === 2);

    const spy = eavesdrop(router);
    t.after(() => spy.close());
    const videoFrames = () => assembleFrames(spy.packets).filter((f) => f.kind === 'video');
    await waitFor('40 frames and a key frame of each sender', () => {
      const senders = perSender(videoFrames());
      return senders.size === 2 && [...senders.values()].every((fs) => fs.length >= 40 && fs.some((f) => f.keyFrame));
    }, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}: ${spy.describe()}, ${videoFrames().length} video frames`);
    });
    assert.deepEqual(spy.negotiationErrors, []);

    // A link holder the host lets in: it holds the real call key, so it can check our reassembly.
    const control = await connectClient(server, { id: linkId, keys: await deriveLinkKeys(secret), hostKeyHash });
    t.after(() => control.signaling.close());
    await control.call.join('Control Reader');
    await host.page.getByRole('button', { name: 'Approve Control Reader' }).click();
    await until(control.call, () => control.call.keys !== undefined, 30_000);
    const controlKey = control.call.keys!.key;
    const atControlEpoch = (f: Frame) => sframeHeaderOf(f)?.epochByte === (controlKey.epoch & 0xff);
    await waitFor('frames of both senders under the new key', () => perSender(videoFrames(), atControlEpoch).size === 2, 30_000);
    // The server may ask publishers for key frames (it does for every new subscriber).
    for (const p of videoProducers()) p.requestKeyFrame();
    await waitFor('30 frames from a key frame on, of each sender, under the new key', () => {
      const senders = perSender(videoFrames(), atControlEpoch);
      return (
        senders.size === 2 &&
        [...senders.values()].every((fs) => {
          const k = fs.findIndex((f) => f.keyFrame);
          return k >= 0 && fs.length - k >= 30;
        })
      );
    }, 60_000);

    // The call still plays on both screens, with the subscriber attached.
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Pavel"]', 30_000);
    await waitForPlayingVideo(guest.page, 'video[aria-label="Video of olga"]', 30_000);
    spy.close();

    const frames = assembleFrames(spy.packets);
    const video = frames.filter((f) => f.kind === 'video');
    const audio = frames.filter((f) => f.kind === 'audio');
    const videoPackets = spy.packets.filter((p) => p.pt === DOWNSTREAM.video.payloadType).length;
    assert.ok(videoPackets >= 300, `video RTP packets received: ${videoPackets}`);
    assert.ok(video.length >= 140, `complete video frames: ${video.length}`);
    assert.ok(audio.length >= 100, `audio frames: ${audio.length}`);

    // What the server can see, as documented: the clear VP8 payload header. Key frames carry its
    // start code, which shows the frames are cut at the right places.
    for (const f of video.filter((x) => x.keyFrame)) {
      assert.deepEqual([...f.data.subarray(3, 6)], [0x9d, 0x01, 0x2a], 'VP8 key frame start code');
    }

    // After the clear bytes: an SFrame header, one KID per sender and epoch, counters rising.
    const epochs = new Set<number>();
    for (const [ssrc, fs] of perSender(frames)) {
      const indexes = new Map<number, Set<bigint>>();
      // A nonce is never used twice under one key: each counter appears once per KID. (Not
      // "always rising": the layers of a simulcast sender share one counter, so when the SFU
      // moves a subscriber down to another layer's key frame, that frame may carry a lower one.)
      const counters = new Set<string>();
      for (const f of fs) {
        const h = sframeHeaderOf(f);
        assert.ok(h, `${f.kind} frame of SSRC ${ssrc} without an SFrame header (${f.data.length} bytes)`);
        epochs.add(h.epochByte);
        indexes.set(h.epochByte, (indexes.get(h.epochByte) ?? new Set()).add(h.senderIndex));
        const nonce = `${h.senderIndex}/${h.epochByte}/${h.ctr}`;
        assert.ok(!counters.has(nonce), `SFrame counter ${h.ctr} of KID ${nonce} used twice`);
        counters.add(nonce);
        assert.ok(f.data.length >= CLEAR_BYTES(f) + h.length + 16, 'room for the authentication tag');
      }
      for (const [epoch, senders] of indexes) assert.equal(senders.size, 1, `one sender index per epoch (${epoch})`);
    }
    assert.ok(epochs.size >= 2, `frames of the epochs before and after the reader joined: ${[...epochs]}`);

    // The real key (held only by admitted link holders) opens every frame of its epoch, so the
    // frames are whole and right…
    const reader = await cryptorWith([controlKey]);
    const plain = new Map<Frame, Uint8Array>();
    for (const f of frames) {
      const out = await reader.decrypt(f.data, { kind: f.kind, keyFrame: f.keyFrame });
      if (out) plain.set(f, out);
    }
    const readable = frames.filter(atControlEpoch);
    assert.ok(readable.length >= 60, `frames under the reader's key: ${readable.length}`);
    assert.equal(plain.size, readable.length, 'the real key opens every frame of its epoch');
    // …and nothing older: a newcomer cannot read what was sent before it came.
    assert.ok(frames.filter((f) => !atControlEpoch(f)).every((f) => !plain.has(f)));

    // No key that can be made without the link secret opens a single frame. Each guess is
    // tried as the exporter secret of the frame's own epoch, with the SFrame key of the frame's own
    // KID (RFC 9605 derive_key_salt), exactly as a receiver holding it would.
    const senderKeys = new Map<string, Promise<SframeKey>>();
    const opensWith = async (guess: Uint8Array, f: Frame): Promise<boolean> => {
      const clear = CLEAR_BYTES(f);
      const header = decodeHeader(f.data, clear)!;
      const id = `${Buffer.from(guess).toString('hex')}/${header.kid}`;
      let key = senderKeys.get(id);
      if (!key) {
        const epoch = Number(header.kid & 0xffn); // the epochs of this call are below 256
        const callKey: CallKey = { secret: guess, epoch };
        key = sframeBaseKey(callKey).then((base) => deriveKeySalt(base, header.kid, 'decrypt'));
        senderKeys.set(id, key);
      }
      return (await sframeDecrypt(await key, f.data.subarray(0, clear), f.data.subarray(clear))) !== undefined;
    };
    const sha256 = async (...parts: Uint8Array[]) =>
      new Uint8Array(await crypto.subtle.digest('SHA-256', Buffer.concat(parts.map((p) => Buffer.from(p)))));
    const utf8 = (s: string) => new TextEncoder().encode(s);
    assert.ok(relayed.length >= 3, 'the server relayed commits and Welcomes');
    const guesses: [string, Uint8Array][] = [
      ['a random call secret', newCallKey(0).secret],
      ['a wrong link secret', newLinkSecret()],
      ['all zeros', new Uint8Array(32)],
      ['SHA-256 of the link id', await sha256(utf8(linkId))],
      ['SHA-256 of the link id and participant ids', await sha256(utf8(linkId), ...videoProducers().map((p) => utf8(p.peerId)))],
      ...relayed.flatMap((b, i): [string, Uint8Array][] => [
        [`the first 32 bytes of relayed commit or Welcome ${i}`, b.subarray(0, 32)],
        [`the last 32 bytes of relayed commit or Welcome ${i}`, b.subarray(b.length - 32)],
      ]),
      // Beyond what the server has: the link secret is not the media key either, so a link
      // holder who was never admitted cannot read the call.
      ['the link secret itself', secret],
    ];
    for (const [what, guess] of guesses) {
      let opened = 0;
      for (const f of frames) if (await opensWith(guess, f)) opened++;
      assert.equal(opened, 0, `${opened} of ${frames.length} frames open with ${what}`);
    }

    // What follows the clear bytes is not a VP8 frame body: a VP8 decoder makes the pictures
    // from the plaintext the real key gives, and none of them from the frames as the server has them.
    const decoding = await person(t, server.url);
    await decoding.page.goto('/');
    for (const fs of perSender(video, atControlEpoch).values()) {
      const start = fs.findIndex((f) => f.keyFrame);
      // Up to 30 frames of one key frame's run: the next key frame may start another layer (on a
      // busy machine the SFU switches a subscriber's size; once "plaintext frame 11" did not give
      // the first key frame's 320x240 picture).
      const next = fs.findIndex((f, i) => i > start && f.keyFrame);
      const run = fs.slice(start, Math.min(start + 30, next > start ? next : Infinity));
      const clear = await decodeVp8(decoding.page, run.map((f) => ({ data: plain.get(f)!, keyFrame: f.keyFrame })));
      const asServerHasIt = await decodeVp8(decoding.page, run);
      assert.deepEqual(clear.errors, [], 'the plaintext decodes');
      const width = (run[0]!.data[6]! | (run[0]!.data[7]! << 8)) & 0x3fff;
      const height = (run[0]!.data[8]! | (run[0]!.data[9]! << 8)) & 0x3fff;
      assert.ok(width >= 160 && height >= 120, `key frame size ${width}x${height}`);
      for (let i = 0; i < run.length; i++) {
        const truth = clear.pictures[i];
        assert.ok(truth && truth.width === width && truth.height === height, `plaintext frame ${i} gives a ${width}x${height} picture`);
        const picture = asServerHasIt.pictures[i];
        if (!picture) continue; // the decoder refused it, or stopped at an earlier one
        const quality = psnr(picture.luma, truth.luma);
        assert.ok(quality < 20, `frame ${i} as the server has it decodes to the real picture (PSNR ${quality.toFixed(1)} dB)`);
      }
    }

    control.signaling.close();
  });

  it('the server never sees the link secret, a guest name or a chat message: not in requests, frames, logs or its database', async (t) => {
    const GUEST = 'Zebulon Quartermaine';
    const CHAT_FROM_GUEST = 'Xylophone marmalade at dawn';
    const CHAT_FROM_HOST = 'Quokka umbrella confirmed';
    const events: TapEvent[] = [];
    const logs: string[] = [];
    const server = await startServer({ tap: (e) => events.push(e), logs, logLevel: 'trace' });
    servers.push(server);

    const host = await person(t, server.url);
    const guest = await person(t, server.url);
    const link = await signUpAndCreateLink(host.page, 'quincy', 'Quarterly review');
    const { linkId, encoded, secret } = parseLink(link);
    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, GUEST);
    await text(guest.page, 'Waiting for quincy to let you in…');
    await host.page.getByRole('button', { name: `Approve ${GUEST}` }).click();
    await waitForPlayingVideo(host.page, `video[aria-label="Video of ${GUEST}"]`, 40_000);
    await waitForPlayingVideo(guest.page, 'video[aria-label="Video of quincy"]', 40_000);
    // Chat both ways: the other page shows each text; the server must hold neither.
    await guest.page.getByRole('button', { name: 'Chat', exact: true }).click();
    await host.page.getByRole('button', { name: 'Chat', exact: true }).click();
    await guest.page.getByRole('textbox', { name: 'Message' }).fill(CHAT_FROM_GUEST);
    await guest.page.getByRole('button', { name: 'Send' }).click();
    await host.page.getByRole('region', { name: 'Chat' }).getByText(CHAT_FROM_GUEST).waitFor();
    await host.page.getByRole('textbox', { name: 'Message' }).fill(CHAT_FROM_HOST);
    await host.page.getByRole('button', { name: 'Send' }).click();
    await guest.page.getByRole('region', { name: 'Chat' }).getByText(CHAT_FROM_HOST).waitFor();
    await guest.page.getByRole('button', { name: 'Leave' }).click();
    await text(guest.page, 'You left the call.');
    await host.page.locator(`video[aria-label="Video of ${GUEST}"]`).waitFor({ state: 'detached', timeout: 30_000 });
    await host.page.getByRole('button', { name: 'End call' }).click();
    await text(host.page, 'Call over');
    for (const p of [host, guest]) await p.context.close();
    await waitFor('the room to close', () => server.app.rooms.size === 0);

    const haystacks: Haystack[] = [];
    for (const e of events) {
      if (e.kind === 'http') {
        const head = `${e.method} ${e.url}\n${JSON.stringify(e.headers)}\n`;
        haystacks.push({ where: `HTTP ${e.method} ${e.url}`, bytes: Buffer.concat([Buffer.from(head), e.body]) });
      } else {
        haystacks.push({ where: `WebSocket frame ${e.kind === 'ws-in' ? 'in' : 'out'}`, bytes: Buffer.from(e.data) });
      }
    }
    for (const line of logs) haystacks.push({ where: `log line ${line.slice(0, 60)}`, bytes: Buffer.from(line) });
    const files = readdirSync(server.dataDir);
    for (const name of files) haystacks.push({ where: `database file ${name}`, bytes: readFileSync(join(server.dataDir, name)) });

    // The capture is real: it holds what the server does get.
    const http = events.filter((e) => e.kind === 'http');
    const wsIn = events.filter((e) => e.kind === 'ws-in').map((e) => JSON.parse(e.data.toString('utf8')) as Record<string, unknown>);
    const wsOut = events.filter((e) => e.kind === 'ws-out').map((e) => JSON.parse(e.data) as Record<string, unknown>);
    const signup = http.find((e) => e.method === 'POST' && e.url === '/api/signup');
    assert.ok(signup?.body.toString().includes('correct horse battery'), 'request bodies are captured');
    assert.ok(http.some((e) => e.method === 'PUT' && e.url === `/api/links/${linkId}/info-mac` && e.body.length > 0));
    assert.ok(http.some((e) => e.url === `/join/${linkId}`), 'the join page request, without its fragment');
    assert.ok(http.some((e) => e.url === '/ws' && e.headers.upgrade === 'websocket'), 'the WebSocket upgrades');
    assert.ok(http.length >= 15, `HTTP requests: ${http.length}`);
    for (const type of ['join', 'approve', 'publish', 'subscribeAnswer', 'leave']) {
      assert.ok(wsIn.some((m) => m.type === type), `a "${type}" frame came in`);
    }
    for (const type of ['waiting', 'knock', 'joined', 'publishAnswer', 'subscribeOffer', 'participantLeft', 'closed']) {
      assert.ok(wsOut.some((m) => m.type === type), `a "${type}" frame went out`);
    }
    assert.ok(logs.length >= 1, 'log lines are captured');
    for (const suffix of ['', '-wal', '-shm']) assert.ok(files.includes(`linkcall.sqlite${suffix}`), `database files: ${files}`);
    assert.ok(haystacks.some((h) => h.where.startsWith('database') && h.bytes.includes('quincy')), 'the database holds the account');
    // The name did pass through the server, sealed: the guest's card opens, with the link secret.
    const linkKeys: LinkKeys = await deriveLinkKeys(secret);
    const names: string[] = [];
    for (const m of wsIn.filter((x) => x.type === 'join')) {
      const opened = await openCard(linkKeys, linkId, m.card as string);
      const card = opened && (await readKeyPackage(opened));
      if (card) names.push(card.credential.name);
    }
    assert.deepEqual(names.sort(), [GUEST, 'quincy'].sort());

    const needles: Needle[] = [
      { what: 'the link secret (#k= value)', bytes: Buffer.from(encoded) },
      { what: 'half of the link secret', bytes: Buffer.from(encoded.slice(0, 22)) },
      { what: 'half of the link secret', bytes: Buffer.from(encoded.slice(21)) },
      ...encodings(Buffer.from(secret)).map((bytes) => ({ what: 'the link secret', bytes })),
      { what: 'the guest name', bytes: Buffer.from(GUEST), caseless: true },
      { what: 'the guest first name', bytes: Buffer.from('Zebulon'), caseless: true },
      { what: 'the guest last name', bytes: Buffer.from('Quartermaine'), caseless: true },
      { what: 'the guest name in UTF-16', bytes: Buffer.from(GUEST, 'utf16le') },
      { what: 'the guest name URL-encoded', bytes: Buffer.from('Zebulon%20Quartermaine'), caseless: true },
      ...encodings(Buffer.from(GUEST)).map((bytes) => ({ what: 'the guest name, encoded', bytes })),
      ...[CHAT_FROM_GUEST, CHAT_FROM_HOST].flatMap((chat) => [
        { what: 'a chat message', bytes: Buffer.from(chat), caseless: true },
        { what: 'a word of a chat message', bytes: Buffer.from(chat.split(' ')[0]!), caseless: true },
        ...encodings(Buffer.from(chat)).map((bytes) => ({ what: 'a chat message, encoded', bytes })),
      ]),
    ];
    // The search finds these values in every form it looks for (checked on planted samples).
    const planted = (value: Buffer) => [
      Buffer.concat([Buffer.from('{"x":"'), value, Buffer.from('"}')]),
      Buffer.from(`k=${value.toString('hex')}`),
      Buffer.from(`k=${value.toString('hex').toUpperCase()}`),
      ...[0, 1, 2].flatMap((shift) => {
        const framed = Buffer.concat([Buffer.alloc(shift, 7), value, Buffer.alloc(5, 9)]);
        return [framed.toString('base64'), framed.toString('base64url')].map((t) => Buffer.from(`"card":"${t}"`));
      }),
    ];
    for (const [what, value] of [['the link secret', Buffer.from(secret)], ['the guest name', Buffer.from(GUEST)]] as const) {
      for (const sample of planted(value)) {
        assert.ok(occurrences([{ where: 'a sample', bytes: sample }], needles).length > 0, `${what} not found in ${sample.toString('latin1')}`);
      }
    }
    for (const sample of ['zebulon quartermaine', 'ZEBULON', Buffer.from(GUEST, 'utf16le').toString('latin1'), `k=${encoded}`]) {
      assert.ok(occurrences([{ where: 'a sample', bytes: Buffer.from(sample, 'latin1') }], needles).length > 0, `not found in ${sample}`);
    }

    assert.deepEqual(occurrences(haystacks, needles), []);
  });

  it('a Welcome the server forges, alters or replays is refused, and names it makes up are never shown', async (t) => {
    const knockCards = new Map<string, string>();
    const server = await startServer({
      tap: (e) => {
        if (e.kind !== 'ws-out') return;
        const m = JSON.parse(e.data) as { type: string; knock?: { id: string; card: string } };
        if (m.type === 'knock' && m.knock) knockCards.set(m.knock.id, m.knock.card);
      },
    });
    servers.push(server);
    const host = await person(t, server.url);
    const link = await signUpAndCreateLink(host.page, 'rhea', 'Private talk');
    const { linkId, secret, hostKeyHash } = parseLink(link);
    const linkKeys: LinkKeys = await deriveLinkKeys(secret);
    await hostEnters(host.page, link);

    // The test plays a malicious server: it changes the Welcome that goes with an approval, and
    // tells guests a host name and link name of its own.
    const room = server.app.rooms.get(linkId) as Room;
    Object.assign(room, { hostName: 'Mallory the admin', linkName: 'Free gift card' });
    const approve = room.approve.bind(room);
    let tamper: ((welcome: string, guestId: string) => Promise<string>) | undefined;
    const approvals: { guestId: string; real: string; sent: string }[] = [];
    room.approve = ((actorId: string, guestId: string, slot: number, commit: string, welcome: string) => {
      // The room's own checks first, as the real server does them; then the forged Welcome.
      const real = welcome;
      void (async () => {
        const sent = tamper ? await tamper(welcome, guestId) : welcome;
        approvals.push({ guestId, real, sent });
        approve(actorId, guestId, slot, commit, sent);
      })();
    }) as typeof room.approve;
    // Whoever takes or sends media: a refused guest must never get that far. (A waiting guest's
    // connections come up before it is let in, empty: its receiving side answers an offer that
    // carries nothing, and its publishing side has senders without tracks. So only answers that
    // take media count, and any packet the SFU receives from the guest.)
    const mediaUsers = new Set<string>();
    const router: Router = (room.media as CallMedia).router;
    router.on('producer', (producer) => {
      producer.once('close', () => producer.stats().packets > 0 && mediaUsers.add(producer.peerId));
    });
    const subscribeAnswer = room.subscribeAnswer.bind(room);
    room.subscribeAnswer = (actorId: string, sdp: string) => {
      if (/^a=recvonly\r?$/m.test(sdp)) mediaUsers.add(actorId);
      return subscribeAnswer(actorId, sdp);
    };
    const frameKeysOfHost = async () => (await host.page.locator('output[aria-label="Safety code"]').textContent()) ?? '';

    const refusedGuest = async (name: string) => {
      const guest = await person(t, server.url);
      await guestKnocks(guest.page, link, name);
      // The waiting page names the host the link verifies, not the server's.
      await text(guest.page, 'Waiting for rhea to let you in');
      assert.equal(await guest.page.getByText('Mallory the admin').count(), 0);
      await host.page.getByRole('button', { name: `Approve ${name}` }).click();
      await text(guest.page, ERRORS.key_refused.message);
      await guest.page.getByRole('heading', { name: 'Call over' }).waitFor();
      assert.equal(await guest.page.locator('video').count(), 0, `${name}'s page shows no video`);
      // The guest leaves at once; the host's screen drops the tile, or never showed it.
      await host.page.locator(`video[aria-label="Video of ${name}"]`).waitFor({ state: 'detached', timeout: 30_000 });
      const { guestId } = approvals[approvals.length - 1]!;
      const sentPackets = [...router.producers.values()].some((p) => p.peerId === guestId && p.stats().packets > 0);
      assert.ok(!mediaUsers.has(guestId) && !sentPackets, `${name} never took or sent media`);
      await guest.context.close();
    };

    // 1. Forged: a well-made Welcome for the right guest and KeyPackage, into a group the server
    // made (it cannot give it a group id MACed with the link's auth key).
    tamper = async (_welcome, guestId) => {
      const opened = await openCard(linkKeys, linkId, knockCards.get(guestId)!);
      const card = opened && (await readKeyPackage(opened));
      assert.ok(card);
      const forger = await CallGroup.create(await newMemberKeys('rhea', Date.now(), await newSigningKey()), {
        hostKeyHash,
        isGone: () => false,
        now: () => Date.now(),
      });
      return toBase64url((await forger.add([card.keyPackage])).welcome!);
    };
    await refusedGuest('Ada');

    // 2. Altered: the host's real Welcome with one bit flipped.
    tamper = async (welcome) => {
      const bytes = Buffer.from(welcome, 'base64url');
      bytes[bytes.length - 40]! ^= 0x01;
      return toBase64url(bytes);
    };
    await refusedGuest('Bea');

    // 3. Replayed: the real, untouched Welcome the host made for Bea, given to the next guest.
    const forBea = approvals[approvals.length - 1]!.real;
    tamper = async () => forBea;
    await refusedGuest('Cy');

    // The host's group went back to just the host each time (its Remove commits followed the leaves).
    await host.page.getByText('(just you)').waitFor({ timeout: 20_000 });
    assert.ok(await frameKeysOfHost());

    // Untouched, the same approval lets a guest in: the refusals above come from the Welcomes. The
    // call's title is the verified link name.
    tamper = undefined;
    const dee = await person(t, server.url);
    await guestKnocks(dee.page, link, 'Dee');
    await host.page.getByRole('button', { name: 'Approve Dee' }).click();
    await waitForPlayingVideo(dee.page, 'video[aria-label="Video of rhea"]', 40_000);
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Dee"]', 40_000);
    await dee.page.getByRole('heading', { name: 'Private talk' }).waitFor();
    assert.equal(await dee.page.getByText('Free gift card').count(), 0);
    const codes = await Promise.all([host.page, dee.page].map((p) => p.locator('output[aria-label="Safety code"]').textContent()));
    assert.equal(codes[0], codes[1], 'one safety code on both screens');
  });
});
