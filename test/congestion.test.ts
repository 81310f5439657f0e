import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_RESEND_AGE_MS, MissingPackets, NACK_RETRY_MS, REPAIR_KEY_FRAME_INTERVAL_MS, RESEND_INTERVAL_MS, ResendHistory, RetransmissionBudget } from '../src/server/media/retransmission.js';
import { TransportFeedbackRecorder } from '../src/server/media/transport-cc.js';
import { BandwidthProbe, CHEAP_FAILURE_MEMORY_MS, FAILED_MEMORY_MS, PROBE_GRACE_MS, PROBE_INTERVAL_MS, PROBE_MS, PROBE_VERDICT_MS } from '../src/server/media/probing.js';
import { FLOOR_HOLD_MS, LOSS_PLAYOUT_FLOOR_MS, PlayoutDelayFloor } from '../src/server/media/playout-delay.js';
import { findHeaderExtension, writePlayoutDelay, type LossReport } from '../src/server/media/rtp.js';
import { offerPlayoutDelay, parseAnswer, PLAYOUT_DELAY_EXTENSION, PLAYOUT_DELAY_EXTENSION_ID } from '../src/server/media/sdp.js';

/** Reads a transport-cc feedback packet the way a browser does: [seq, arrival ms | undefined]. */
function decodeFeedback(b: Buffer): { base: number; count: number; fbCount: number; arrivals: (number | undefined)[] } {
  assert.equal(b[0]! & 0x1f, 15);
  assert.equal(b[1], 205);
  assert.equal((b.readUInt16BE(2) + 1) * 4, b.length);
  assert.equal(b.length % 4, 0);
  const end = b[0]! & 0x20 ? b.length - b[b.length - 1]! : b.length;
  const base = b.readUInt16BE(12);
  const count = b.readUInt16BE(14);
  const reference = b.readIntBE(16, 3);
  const fbCount = b[19]!;
  const symbols: number[] = [];
  let at = 20;
  while (symbols.length < count) {
    const chunk = b.readUInt16BE(at);
    at += 2;
    if (chunk & 0x8000) {
      const twoBit = (chunk & 0x4000) !== 0;
      const n = twoBit ? 7 : 14;
      for (let k = 0; k < n && symbols.length < count; k++) {
        symbols.push(twoBit ? (chunk >> (12 - 2 * k)) & 3 : (chunk >> (13 - k)) & 1);
      }
    } else {
      const symbol = (chunk >> 13) & 3;
      for (let k = 0; k < (chunk & 0x1fff) && symbols.length < count; k++) symbols.push(symbol);
    }
  }
  let ticks = reference * 256;
  const arrivals = symbols.map((s) => {
    if (s === 0) return undefined;
    const d = s === 1 ? b[at++]! : b.readInt16BE((at += 2) - 2);
    ticks += d;
    return ticks / 4;
  });
  assert.ok(at <= end, 'deltas fit the packet');
  return { base, count, fbCount, arrivals };
}

test('transport-cc feedback reports each arrival to 250 µs, losses as not received, and the next one starts where it ended', () => {
  const r = new TransportFeedbackRecorder();
  assert.equal(r.build(1, 2), undefined, 'nothing arrived: no feedback');
  r.onPacket(65534, 10_000.1);
  r.onPacket(65535, 10_001);
  // 0 lost
  r.onPacket(1, 10_090.25); // a long gap: two-byte delta
  r.onPacket(3, 10_089); // arrived before 1 was: negative delta
  const fb = decodeFeedback(r.build(0x11223344, 0x55667788)!);
  assert.equal(fb.base, 65534);
  assert.equal(fb.count, 6);
  assert.equal(fb.fbCount, 0);
  const expected = [10_000.1, 10_001, undefined, 10_090.25, undefined, 10_089];
  fb.arrivals.forEach((a, i) => {
    if (expected[i] === undefined) assert.equal(a, undefined, `seq ${i} lost`);
    else assert.ok(Math.abs(a! - expected[i]!) <= 0.25, `seq ${i}: ${a} vs ${expected[i]}`);
  });
  r.onPacket(2, 10_120); // reported lost already: too late for feedback
  r.onPacket(4, 10_130);
  const next = decodeFeedback(r.build(1, 2)!);
  assert.deepEqual([next.base, next.count, next.fbCount], [4, 1, 1]);
  assert.ok(Math.abs(next.arrivals[0]! - 10_130) <= 0.25);
  assert.equal(r.build(1, 2), undefined);
});

test('a NACKed packet is resent once per round trip, not when too old, and resends stay within the budget', () => {
  const h = new ResendHistory();
  h.onSent(100, 0);
  assert.equal(h.shouldResend(100, 50), true);
  h.onResent(100, 50);
  assert.equal(h.shouldResend(100, 60), false, 'already resent just now');
  assert.equal(h.shouldResend(100, 50 + RESEND_INTERVAL_MS), true);
  assert.equal(h.shouldResend(101, 60), false, 'never sent');
  assert.equal(h.shouldResend(100, MAX_RESEND_AGE_MS + 1), false, 'too old to be of use');

  const budget = new RetransmissionBudget();
  // 400 kbit/s subscriber: 20 % is 10 bytes/ms.
  let sent = 0;
  for (let t = 0; t < 1000; t++) if (budget.take(1200, 400_000, t)) sent += 1200;
  assert.ok(sent >= 8000 && sent <= 13_000, `${sent} bytes resent in 1 s`);
});

test('a packet still NACKed when too old to resend asks for a key frame, once a second at most, and not after a key frame went out', () => {
  const h = new ResendHistory();
  h.onSent(9, 0, true); // a key frame
  for (let seq = 10; seq < 20; seq++) h.onSent(seq, seq);
  // The subscriber lost 12 and 13, and NACKs them while the resends do not get through.
  assert.equal(h.needsKeyFrame(12, 500), false, 'young enough to resend');
  assert.equal(h.shouldResend(12, MAX_RESEND_AGE_MS + 100), false);
  assert.equal(h.needsKeyFrame(12, MAX_RESEND_AGE_MS + 100), true, 'too old: only a key frame repairs the picture');
  assert.equal(h.needsKeyFrame(13, MAX_RESEND_AGE_MS + 200), false, 'asked just now');
  assert.equal(h.needsKeyFrame(99, MAX_RESEND_AGE_MS + 100 + REPAIR_KEY_FRAME_INTERVAL_MS), false, 'never sent');
  // The key frame goes out: NACKs for what came before it need nothing more.
  const keyAt = MAX_RESEND_AGE_MS + 400;
  h.onSent(20, keyAt, true);
  assert.equal(h.needsKeyFrame(13, keyAt + REPAIR_KEY_FRAME_INTERVAL_MS), false, 'a key frame went out after it');
  // A packet lost after the key frame, still NACKed a second later: asked again.
  h.onSent(21, keyAt + 10);
  assert.equal(h.needsKeyFrame(21, keyAt + 10 + MAX_RESEND_AGE_MS + 1), true);
});

test('an upstream gap is NACKed again with backoff until the packet arrives', () => {
  const m = new MissingPackets();
  m.add(7, 0);
  m.add(8, 0);
  const out: number[] = [];
  m.due(NACK_RETRY_MS[0]! - 1, out);
  assert.deepEqual(out, []);
  m.due(NACK_RETRY_MS[0]!, out);
  assert.deepEqual(out, [7, 8]);
  m.arrived(7);
  out.length = 0;
  m.due(NACK_RETRY_MS[0]! + NACK_RETRY_MS[1]!, out);
  assert.deepEqual(out, [8]);
  out.length = 0;
  m.due(10_000, out);
  assert.deepEqual(out, [8], 'the last try');
  assert.equal(m.size, 0, 'then given up');
});

/** A receiver report of `packets` packets that lost `fraction` of them. */
function lossOf(fraction: number, packets = 100): LossReport {
  return { lost: Math.round(fraction * packets), expected: packets };
}

test('a subscriber seeing moderate video loss gets a playout-delay floor, kept a while; none on a clean or a congested link', () => {
  const f = new PlayoutDelayFloor();
  const second = (t: number, loss: number) => {
    f.onLoss(lossOf(loss));
    return f.update(t * 1000);
  };
  assert.equal(second(1, 0), 0, 'clean link');
  // 3 % random loss: one second's reports swing from 0 to over 10 %.
  const lossy = [0.03, 0, 0.12, 0.02, 0.05, 0, 0.04, 0.13, 0.01, 0.03];
  let floors = lossy.map((l, i) => second(2 + i, l));
  assert.ok(floors.slice(3).every((m) => m === LOSS_PLAYOUT_FLOOR_MS), `floors ${floors.join(' ')}`);
  // Loss stops: the floor goes only once the smoothed loss is low and it has been on a while.
  floors = [0, 0, 0, 0, 0, 0, 0, 0].map((l, i) => second(12 + i, l));
  assert.equal(floors.at(-1), 0);
  const g = new PlayoutDelayFloor();
  for (let t = 1; t <= 10; t++) {
    g.onLoss(lossOf(0.4));
    assert.equal(g.update(t * 1000), 0, 'a congested link (40 % lost) gets no floor');
  }
  assert.ok(FLOOR_HOLD_MS >= 2000);
  // A bandwidth drop: two seconds of heavy loss, then none (the link got narrower, the SFU
  // stepped down). The smoothed loss passes through the floor's range, but no floor.
  const h = new PlayoutDelayFloor();
  [0, 0, 0.23, 0.23, 0, 0, 0, 0, 0, 0, 0, 0].forEach((l, i) => {
    h.onLoss(lossOf(l));
    assert.equal(h.update((i + 1) * 1000), 0, `second ${i + 1}: a burst is no floor`);
  });
});

test('the playout-delay extension replaces what the publisher put in the header extension block, and is offered on video only', () => {
  // 12-byte header, one-byte-form block of two words: abs-send-time (id 6, 3 bytes) and transport-cc (id 3, 2 bytes).
  const pkt = Buffer.from([0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xbe, 0xde, 0, 2, 0x62, 1, 2, 3, 0x31, 0, 9, 0, 0xaa]);
  assert.equal(writePlayoutDelay(pkt, PLAYOUT_DELAY_EXTENSION_ID, 200, 10_000), true);
  const len = new Int32Array(1);
  const at = findHeaderExtension(pkt, PLAYOUT_DELAY_EXTENSION_ID, len);
  assert.equal(len[0], 3);
  assert.equal((pkt[at]! << 4) | (pkt[at + 1]! >> 4), 20, 'min 200 ms in 10 ms units');
  assert.equal(((pkt[at + 1]! & 0xf) << 8) | pkt[at + 2]!, 1000, 'max 10 s');
  assert.equal(findHeaderExtension(pkt, 3, len), -1, "the publisher's transport-cc element is gone");
  assert.equal(pkt[24], 0xaa, 'payload untouched');
  const bare = Buffer.from([0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xaa]);
  assert.equal(writePlayoutDelay(bare, PLAYOUT_DELAY_EXTENSION_ID, 200, 10_000), false);
  assert.equal(bare.length, 13);

  const offer = ['v=0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', 'a=rtpmap:111 opus/48000/2', 'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', 'a=rtpmap:96 VP8/90000', 'm=video 0 UDP/TLS/RTP/SAVPF 96', 'a=mid:2', 'a=rtpmap:96 VP8/90000', ''].join('\r\n');
  const munged = parseAnswer(offerPlayoutDelay(offer));
  assert.equal(munged.get('0')!.extensions.size, 0);
  assert.equal(munged.get('1')!.extensions.get(PLAYOUT_DELAY_EXTENSION), PLAYOUT_DELAY_EXTENSION_ID);
  assert.equal(munged.get('2')!.extensions.size, 0, 'not on a removed m-line');
});

test('a probe raises the estimate when the link has room, and a failed one leaves it and is remembered', () => {
  const p = new BandwidthProbe();
  // Wants 850 kbit/s, gets 250: probes at twice that.
  let s = p.update(0, 250_000, 850_000, 250_000, 0);
  assert.equal(s.paddingRate, 250_000);
  assert.equal(p.onLoss(lossOf(0), 100), true, "its reports are the probe's");
  s = p.update(PROBE_MS, 250_000, 850_000, 250_000, 0);
  assert.equal(s.paddingRate, 0, 'stops sending at its end');
  // Nothing failed it soon after its end: confirmed, and the next step starts in the same tick,
  // from the confirmed rate, up to what is needed (and a margin), not twice.
  let t = PROBE_MS + PROBE_VERDICT_MS;
  s = p.update(t, 250_000, 850_000, 250_000, 0);
  assert.equal(s.confirmed, 500_000);
  assert.equal(s.paddingRate, 850_000 * 1.1 - 250_000);
  // The link is full: the media gets NACKed, the probe ends at once and nothing is confirmed.
  assert.equal(p.onNack(2, 40, t + 100), false);
  assert.equal(p.onNack(8, 60, t + 200), true);
  assert.equal(p.probing, false);
  assert.equal(p.onLoss(lossOf(0.3), t + 400), false, "later reports are the estimator's again");
  s = p.update(t + 1000, 500_000, 850_000, 500_000, 0);
  assert.deepEqual(s, { paddingRate: 0, confirmed: undefined }, 'waits longer after a failure');
  // While it is remembered, a probe goes only under the failed rate, and only if that is enough
  // for some tile to get a larger layer.
  t += 200 + 2 * PROBE_INTERVAL_MS[0];
  assert.equal(p.update(t, 500_000, 850_000, 500_000, 0, 850_000).paddingRate, 0, 'nothing to gain under the failed rate');
  s = p.update(t, 500_000, 850_000, 500_000, 0, 600_000);
  assert.ok(s.paddingRate > 0 && 500_000 + s.paddingRate < 850_000 * 1.1 * 0.9, `a smaller step: ${s.paddingRate}`);
  // Forgotten after FAILED_MEMORY_MS: the full step again.
  const q2 = new BandwidthProbe();
  q2.update(0, 500_000, 850_000, 500_000, 0);
  q2.onNack(20, 30, 100);
  assert.equal(q2.update(FAILED_MEMORY_MS[0] - 100, 500_000, 850_000, 500_000, 0).paddingRate, 0);
  assert.equal(q2.update(FAILED_MEMORY_MS[0] + 100, 500_000, 850_000, 500_000, 0).paddingRate, 850_000 * 1.1 - 500_000);

  // A queue that grows shows first in the subscriber's REMB: a falling one ends the probe. It lost
  // nothing, so it is remembered only briefly: probing is how a link that came back is found.
  const r = new BandwidthProbe();
  r.onRemb(400_000, 0);
  assert.ok(r.update(10_000, 250_000, 850_000, 250_000, 0).paddingRate > 0);
  assert.equal(r.onRemb(410_000, 10_100), false);
  assert.equal(r.onRemb(350_000, 10_200), true);
  assert.equal(r.probing, true, 'its reports still come: they may show it cost media');
  assert.equal(r.update(10_200 + CHEAP_FAILURE_MEMORY_MS - 100, 250_000, 850_000, 250_000, 0).paddingRate, 0);
  assert.equal(r.update(10_200 + CHEAP_FAILURE_MEMORY_MS + 100, 250_000, 850_000, 250_000, 0).paddingRate, 250_000);

  // A REMB failure whose NACKs come after it lost media after all: remembered as long as one.
  const c = new BandwidthProbe();
  c.onRemb(400_000, 0);
  c.update(10_000, 250_000, 850_000, 250_000, 0);
  assert.equal(c.onRemb(350_000, 10_200), true);
  c.onNack(2, 0, 10_500);
  assert.equal(c.update(10_200 + CHEAP_FAILURE_MEMORY_MS + 100, 250_000, 850_000, 250_000, 0).paddingRate, 0);

  // A success its late loss reports contradict is remembered as a failure.
  const l = new BandwidthProbe();
  l.update(0, 250_000, 850_000, 250_000, 0);
  assert.equal(l.update(PROBE_MS + PROBE_VERDICT_MS, 250_000, 260_000, 250_000, 0).confirmed, 500_000);
  assert.equal(l.probing, true, 'its reports still count for it');
  assert.equal(l.onLoss(lossOf(0.2), PROBE_MS + PROBE_VERDICT_MS + 200), true);
  assert.equal(l.probing, false);
  assert.equal(l.update(PROBE_MS + PROBE_GRACE_MS + 2000, 500_000, 850_000, 500_000, 0, 600_000).paddingRate, 0, 'no probe at or above 500 kbit/s for a while');

  // A drop-tail queue drops mostly the probe's own packets, which nobody NACKs: on a link that
  // loses nothing otherwise, even one media packet NACKed after the probe's end fails it.
  const n = new BandwidthProbe();
  for (let t = 0; t < 5000; t += 1000) n.update(t, 4_000_000, 850_000, 250_000, 0);
  assert.ok(n.update(5000, 250_000, 850_000, 250_000, 0).paddingRate > 0);
  assert.equal(n.onNack(1, 10, 5000 + PROBE_MS + 100), false, 'after its end: counted, not ended');
  assert.equal(n.update(5000 + PROBE_MS + PROBE_VERDICT_MS, 250_000, 850_000, 250_000, 0).confirmed, undefined);
  // Where NACKs are usual (random loss), a few during a probe are not its doing.
  const u = new BandwidthProbe();
  for (let t = 0; t < 5000; t += 1000) {
    u.onNack(5, 0, t + 500);
    u.update(t + 1000, 4_000_000, 850_000, 250_000, 0);
  }
  assert.ok(u.update(6000, 250_000, 850_000, 250_000, 0).paddingRate > 0);
  u.onNack(3, 30, 6000 + PROBE_MS + 100);
  assert.equal(u.update(6000 + PROBE_MS + PROBE_VERDICT_MS, 250_000, 850_000, 250_000, 0).confirmed, 500_000);

  // Under 3 % random loss on the small layer alone (15 packets a second, ~0.5 NACKs a second): a
  // probe with one NACK and one lost packet in its reports was chance, not the probe's doing.
  const w = new BandwidthProbe();
  for (let t = 0; t < 8000; t += 1000) {
    if (t % 2000 === 0) w.onNack(1, 0, t + 500);
    w.update(t + 1000, 4_000_000, 850_000, 150_000, 0.03);
  }
  assert.ok(w.update(9000, 150_000, 850_000, 150_000, 0.03).paddingRate > 0);
  w.onNack(1, 5, 9000 + PROBE_MS + 100);
  assert.equal(w.onLoss(lossOf(1 / 15, 15), 9000 + PROBE_MS + 200), true);
  assert.equal(w.update(9000 + PROBE_MS + PROBE_VERDICT_MS, 150_000, 850_000, 150_000, 0.03).confirmed, 300_000);
  // A probe that cost the same link three lost packets, or three NACKs, failed.
  for (const cost of ['lost', 'nacked'] as const) {
    const x = new BandwidthProbe();
    for (let t = 0; t < 8000; t += 1000) {
      if (t % 2000 === 0) x.onNack(1, 0, t + 500);
      x.update(t + 1000, 4_000_000, 850_000, 150_000, 0.03);
    }
    assert.ok(x.update(9000, 150_000, 850_000, 150_000, 0.03).paddingRate > 0);
    if (cost === 'lost') x.onLoss(lossOf(4 / 15, 15), 9000 + PROBE_MS + 200);
    else x.onNack(3, 5, 9000 + PROBE_MS + 100);
    assert.equal(x.update(9000 + PROBE_MS + PROBE_VERDICT_MS, 150_000, 850_000, 150_000, 0.03).confirmed, undefined, `${cost}: failed`);
  }

  // Nothing to probe for: the estimate covers what the tiles want.
  const q = new BandwidthProbe();
  assert.equal(q.update(0, 4_000_000, 850_000, 900_000, 0).paddingRate, 0);
  assert.equal(q.update(0, 250_000, 850_000, 250_000, 0.2).paddingRate, 0, 'nor while losing much');
  assert.equal(q.update(2000, 250_000, 850_000, 250_000, 0).paddingRate, 0, 'nor right after');
  assert.ok(q.update(3500, 250_000, 850_000, 250_000, 0).paddingRate > 0, 'then it does');
});
