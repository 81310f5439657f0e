// SFU decisions as pure logic, without a network: which simulcast layer a subscriber gets, when
// a switch may happen, how key-frame requests are limited, whose microphone is forwarded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MediaContext } from '../src/server/media/context.js';
import { newCounters } from '../src/server/media/counters.js';
import { FakeTrack } from './support/fake-track.js';
import { Consumer } from '../src/server/media/consumer.js';
import { KeyFrameRequestLimiter } from '../src/server/media/keyframes.js';
import { allocateLayers, BandwidthEstimator, LayerRate, MIN_PACKETS_FOR_LOSS, nextUpgradeBitrate, SmallLayerSqueeze, SQUEEZE_HOLD_MS, SQUEEZE_LOSS, GROWTH_CAP, LAYER_PAUSE_DELAY_MS, LayerDemand, LOWER_LAYER_PAUSE_DELAY_MS, lowestNeeded, tileDemand, wantedLayer, type LayerState } from '../src/server/media/layers.js';
import { Producer } from '../src/server/media/producer.js';
import { buildPli, buildReceiverReport, forEachReportBlock, parseRtcpCompound, ReportedLoss, rtpSequenceNumber, rtpSsrc, rtpTimestamp, type ReportBlockLoss } from '../src/server/media/rtp.js';
import { LoudestSpeakers } from '../src/server/media/speakers.js';
import { LayerSwitch, type SourcePacket } from '../src/server/media/switcher.js';

/** The usual three layers of a 1280x720 camera, all flowing. */
function ladder(active = [true, true, true]): LayerState[] {
  return [
    { width: 320, height: 180, bitrate: 150_000, active: active[0]! },
    { width: 640, height: 360, bitrate: 500_000, active: active[1]! },
    { width: 1280, height: 720, bitrate: 1_500_000, active: active[2]! },
  ];
}

describe('layer selection', () => {
  it('a small tile never pulls the full layer; a big one gets it', () => {
    const layers = ladder();
    assert.equal(wantedLayer({ width: 160, height: 90 }, layers), 0);
    assert.equal(wantedLayer({ width: 320, height: 180 }, layers), 0);
    assert.equal(wantedLayer({ width: 330, height: 186 }, layers), 1, 'never upscaled');
    assert.equal(wantedLayer({ width: 640, height: 360 }, layers), 1);
    assert.equal(wantedLayer({ width: 800, height: 450 }, layers), 2);
    assert.equal(wantedLayer({ width: 1920, height: 1080 }, layers), 2, 'nothing bigger than the full layer');
  });

  it('hidden or paused tiles get nothing; without a viewport the best layer', () => {
    assert.equal(wantedLayer(null, ladder()), -1);
    assert.equal(wantedLayer(undefined, ladder()), 2);
    assert.deepEqual(allocateLayers([{ tile: null, layers: ladder() }], 10e6), [-1]);
  });

  it('layers the publisher does not send are skipped', () => {
    const layers = ladder([true, false, false]);
    assert.equal(wantedLayer({ width: 1280, height: 720 }, layers), 0);
    assert.equal(wantedLayer({ width: 100, height: 100 }, ladder([false, true, true])), 1);
    assert.equal(wantedLayer(undefined, ladder([false, false, false])), -1);
  });

  it('sizes not known yet are estimated from the layers that are known', () => {
    const layers = ladder();
    layers[0]!.width = layers[0]!.height = 0;
    layers[1]!.width = layers[1]!.height = 0;
    assert.equal(wantedLayer({ width: 300, height: 170 }, layers), 0);
    assert.equal(wantedLayer({ width: 600, height: 340 }, layers), 1);
  });

  it('bandwidth decides within what the tiles want, biggest tiles first, never below the lowest layer', () => {
    const big = { width: 1280, height: 720 };
    const small = { width: 320, height: 180 };
    // Plenty: each gets what its tile wants.
    assert.deepEqual(allocateLayers([{ tile: big, layers: ladder() }, { tile: small, layers: ladder() }], 10e6), [2, 0]);
    // 1 Mbit/s: the big tile can only step up to the middle layer.
    assert.deepEqual(allocateLayers([{ tile: big, layers: ladder() }, { tile: small, layers: ladder() }], 1e6), [1, 0]);
    // Far too little: everyone still sees the lowest layer (smaller video, not none).
    assert.deepEqual(allocateLayers([{ tile: big, layers: ladder() }, { tile: big, layers: ladder() }], 100_000), [0, 0]);
    // 32 small gallery tiles at 5 Mbit/s: all on the lowest layer, no one on the full one.
    const gallery = Array.from({ length: 32 }, () => ({ tile: { width: 240, height: 135 }, layers: ladder() }));
    assert.deepEqual(allocateLayers(gallery, 5e6), gallery.map(() => 0));
    // A speaker view: one big tile and 31 thumbnails in 8 Mbit/s.
    const speaker = [{ tile: big, layers: ladder() }, ...gallery.slice(1)];
    const chosen = allocateLayers(speaker, 8e6);
    assert.equal(chosen[0], 2);
    assert.ok(chosen.slice(1).every((l) => l === 0));
  });

  it('the budget a probe must prove: where some tile gets a larger layer, counting paused layers as there', () => {
    const big = { width: 1280, height: 720 };
    const small = { width: 320, height: 180 };
    const streams = [{ tile: big, layers: ladder([true, false, false]) }, { tile: small, layers: ladder() }];
    // Both on the lowest layer (300 kbit/s): the big tile's next is the middle one, 350 more.
    assert.equal(nextUpgradeBitrate(streams, [0, 0]), 300_000 + 350_000);
    assert.deepEqual(allocateLayers(streams.map((x) => ({ ...x, layers: ladder() })), 650_000), [1, 0], 'and at that budget it gets it');
    assert.equal(nextUpgradeBitrate(streams, [2, 0]), Infinity, 'everyone has what the tile wants');
  });
});

describe('what a layer costs', () => {
  // Two people's two layers, 160x120 and 640x480, on a guest's 400 kbit/s downlink, estimated at 450 kbit/s.
  const twoLayers = (big: number): LayerState[] => [
    { width: 160, height: 120, bitrate: 90_000, active: true },
    { width: 640, height: 480, bitrate: big, active: true },
  ];
  const guest = (big: number) => allocateLayers([{ tile: { width: 640, height: 480 }, layers: twoLayers(big) }, { tile: { width: 640, height: 480 }, layers: twoLayers(700_000) }], 450_000);

  it('a sender short of CPU for a moment does not make its large layer look cheap enough for a narrow link', () => {
    const rate = new LayerRate();
    let cost = 0;
    for (let t = 0; t < 20; t++) cost = rate.update(700_000);
    // Lab, 2026-12-07: the layer fell to 280-440 kbit/s for about 3 s (6 ticks), then came back.
    for (let t = 0; t < 6; t++) cost = rate.update(300_000);
    assert.ok(cost >= 500_000, `priced at ${cost}`);
    assert.deepEqual(guest(cost), [0, 0], 'the guest keeps the small layers');
    // Priced at the smoothed dip alone (0.7/0.3 per tick), it would have been given the large one.
    let smoothed = 700_000;
    for (let t = 0; t < 6; t++) smoothed = smoothed * 0.7 + 300_000 * 0.3;
    assert.deepEqual(guest(smoothed), [1, 0]);
  });

  it('a layer whose rate falls for good is priced at it within about 12 s', () => {
    const rate = new LayerRate();
    for (let t = 0; t < 20; t++) rate.update(700_000);
    let cost = 0;
    for (let t = 0; t < 24; t++) cost = rate.update(200_000);
    assert.ok(cost < 250_000, `priced at ${cost} after 12 s`);
  });

  it('a key frame every few seconds does not raise the price it is held at', () => {
    const rate = new LayerRate();
    let cost = 0;
    for (let t = 0; t < 40; t++) cost = rate.update(t % 6 === 0 ? 1_400_000 : 700_000);
    // The next tick after the last key frame's: the price is back near the layer's usual rate.
    for (let t = 0; t < 2; t++) cost = rate.update(700_000);
    assert.ok(cost < 900_000, `priced at ${cost}`);
  });

  it('one key frame does not make a layer look expensive', () => {
    const rate = new LayerRate();
    for (let t = 0; t < 20; t++) rate.update(100_000);
    const cost = rate.update(400_000);
    assert.ok(cost < 200_000, `priced at ${cost}`);
  });
});

describe('which layers a publisher is asked to send', () => {
  it('a tile asks for the layer that fills it even while that layer is paused; hidden or unsaid tiles ask nothing', () => {
    const paused = ladder([true, false, false]);
    assert.equal(tileDemand({ width: 320, height: 180 }, paused), 0);
    assert.equal(tileDemand({ width: 640, height: 360 }, paused), 1, 'a paused layer keeps the size of its last key frame');
    assert.equal(tileDemand({ width: 1280, height: 720 }, paused), 2);
    assert.equal(tileDemand(null, ladder()), -1);
    assert.equal(tileDemand(undefined, ladder()), -1);
  });

  it('more at once, fewer only after the pause delay; no demand changes nothing', () => {
    const d = new LayerDemand(3);
    assert.equal(d.count, 3, 'a publisher starts sending every layer');
    assert.equal(d.update(0, 0), undefined, 'not at once');
    assert.equal(d.update(0, LAYER_PAUSE_DELAY_MS - 1), undefined);
    assert.equal(d.update(0, LAYER_PAUSE_DELAY_MS), 1, 'the small layer only');
    assert.equal(d.update(2, LAYER_PAUSE_DELAY_MS + 10), 3, 'a big tile gets every layer at once');
    // A grid that reflows (lower for a moment) does not flap the encoder.
    assert.equal(d.update(1, 10_000), undefined);
    assert.equal(d.update(2, 10_500), undefined);
    assert.equal(d.update(1, 11_000), undefined);
    assert.equal(d.update(1, 11_000 + LAYER_PAUSE_DELAY_MS), 2);
    // Nobody says what they need (alone, or newcomers without a viewport yet): nothing changes,
    // so a newcomer's first picture never waits for an encoder being reconfigured.
    assert.equal(d.update(-1, 20_000), undefined);
    assert.equal(d.update(-1, 20_000 + LAYER_PAUSE_DELAY_MS), undefined);
    assert.equal(d.count, 2);
    assert.equal(d.update(0, 30_000), undefined);
    assert.equal(d.update(-1, 31_000), undefined, 'no demand also resets the pause delay');
    assert.equal(d.update(0, 32_000), undefined);
    assert.equal(d.update(0, 32_000 + LAYER_PAUSE_DELAY_MS), 1);
    assert.equal(d.update(5, 40_001), 3, 'never more than there are');
  });

  it('layers below what every subscriber could take stop after a while, and come back at once when one needs them', () => {
    const big = { width: 1280, height: 720 };
    assert.deepEqual(lowestNeeded([{ tile: big, layers: ladder() }], 4_000_000), [2]);
    assert.deepEqual(lowestNeeded([{ tile: big, layers: ladder([false, false, true]) }], 4_000_000), [2], 'stopped layers count as available');
    assert.deepEqual(lowestNeeded([{ tile: big, layers: ladder() }], 600_000), [0], 'a budget close to the middle layer keeps the small one');
    assert.deepEqual(lowestNeeded([{ tile: { width: 300, height: 170 }, layers: ladder() }], 4_000_000), [0], 'a small tile');
    assert.deepEqual(lowestNeeded([{ tile: null, layers: ladder() }], 4_000_000), [-1], 'a hidden tile says nothing');

    const d = new LayerDemand(3);
    assert.equal(d.updateFrom(2, 0), undefined, 'not at once');
    assert.equal(d.updateFrom(2, LOWER_LAYER_PAUSE_DELAY_MS - 1), undefined);
    assert.equal(d.updateFrom(2, LOWER_LAYER_PAUSE_DELAY_MS), 2, 'only the top layer');
    assert.equal(d.updateFrom(0, LOWER_LAYER_PAUSE_DELAY_MS + 10), 0, 'a subscriber whose bandwidth fell gets the small layer back at once');
    assert.equal(d.updateFrom(-1, 30_000), undefined, 'nobody says: nothing changes');
    assert.equal(d.updateFrom(1, 40_000), undefined);
    assert.equal(d.update(0, 40_000), undefined);
    assert.equal(d.update(0, 40_000 + LAYER_PAUSE_DELAY_MS), 1);
    assert.equal(d.updateFrom(1, 40_000 + LOWER_LAYER_PAUSE_DELAY_MS), undefined);
    assert.equal(d.from, 0, 'never above the highest layer asked for');
  });
});

describe('bandwidth estimate', () => {
  it('loss cuts it, no loss grows it, REMB far below what is sent for 2 s cuts it', () => {
    const bwe = new BandwidthEstimator({ initial: 2e6, min: 100_000, max: 10e6 });
    bwe.onLoss({ lost: 25, expected: 100 });
    bwe.update(500);
    assert.equal(bwe.estimate, 2e6, 'one second of 25 % lost is not yet congestion');
    bwe.onLoss({ lost: 25, expected: 100 });
    bwe.update(1000);
    assert.equal(Math.round(bwe.estimate), Math.round(2e6 * (1 - 0.125)), 'two are');
    const narrowed = new BandwidthEstimator({ initial: 2e6, min: 100_000, max: 10e6 });
    narrowed.onLoss({ lost: 60, expected: 100 });
    narrowed.update(1000, 1.5e6);
    assert.equal(narrowed.estimate, 1.5e6 * 0.4, 'far over (a link that just narrowed): at once, down to what got through');
    const afterLoss = bwe.estimate;
    bwe.onLoss({ lost: 0, expected: 100 });
    bwe.update(2000, 1.6e6);
    assert.ok(bwe.estimate > afterLoss * 1.07, 'grows without loss');
    const beforeRemb = bwe.estimate;
    bwe.onRemb(1.5e6, 1.6e6, 2000); // a receive-side estimate just above what it gets: no signal
    assert.equal(bwe.estimate, beforeRemb);
    bwe.onRemb(400_000, 1.6e6, 2100); // one dip (a starved receiver): ignored
    bwe.onRemb(1.7e6, 1.6e6, 2200);
    bwe.onRemb(400_000, 1.6e6, 2300);
    assert.equal(bwe.estimate, beforeRemb);
    // A receiver catching up after the rate went up: rising, however far below, is no congestion.
    for (let t = 2400; t <= 4500; t += 100) bwe.onRemb(300_000 + t * 100, 1.6e6, t);
    assert.equal(bwe.estimate, beforeRemb);
    for (let t = 4600; t <= 6600; t += 100) bwe.onRemb(600_000, 1.6e6, t); // for 2 s: congestion
    assert.equal(bwe.estimate, 0.85 * 1.6e6);
    for (let i = 0; i < 10; i++) bwe.update(7000 + i * 1000, 1.6e6);
    assert.ok(bwe.estimate > 2e6, 'recovers when the loss stays low');
    assert.equal(bwe.estimate, GROWTH_CAP * 1.6e6, 'but unproven, only so far above what is sent');
    bwe.raiseTo(3e6); // a probe got 3 Mbit/s through
    for (let i = 0; i < 5; i++) bwe.update(17_000 + i * 1000, 0.5e6);
    assert.equal(bwe.estimate, 3e6, 'what a probe proved stays while nothing is lost');
  });

  it('a link that just got narrower: a falling REMB far below what is sent, with loss, is the estimate at once', () => {
    const bwe = new BandwidthEstimator({ initial: 4e6, min: 100_000, max: 10e6 });
    bwe.onRemb(2.4e6, 2.1e6, 0);
    bwe.onRemb(0.98e6, 2.1e6, 100); // falling, but nothing lost yet: could be a starved receiver
    assert.equal(bwe.estimate, 4e6);
    bwe.onLoss({ lost: 23, expected: 100 }, 300);
    bwe.onRemb(0.77e6, 2.1e6, 400);
    assert.equal(bwe.estimate, 0.77e6);
    bwe.onRemb(0.8e6, 2.1e6, 500); // not falling: no change
    assert.equal(bwe.estimate, 0.77e6);
    bwe.onRemb(0.28e6, 2.1e6, 3000); // loss 2.7 s ago: the slower rule's business
    assert.equal(bwe.estimate, 0.77e6);
  });

  it('loss is counted in packets: a small layer losing one of its 15 packets is no 7 % cut, and fewer than 20 packets wait for more', () => {
    // Receiver reports as Chromium sends them, read back by the parser the consumer uses.
    const blocks: ReportBlockLoss[] = [];
    const report = (cumulativeLost: number, extendedHighestSeq: number) => {
      const rr = buildReceiverReport(1, [{ ssrc: 7, fractionLost: 0, cumulativeLost, extendedHighestSeq, jitter: 0, lastSr: 0, delaySinceLastSr: 0 }]);
      for (const p of parseRtcpCompound(rr)) forEachReportBlock(rr, p, (b) => blocks.push(b));
      return blocks.at(-1)!;
    };
    const stream = new ReportedLoss();
    assert.equal(stream.next(report(0, 65_530)), undefined, 'the first report only sets where counting starts');
    assert.deepEqual(stream.next(report(1, 65_545)), { lost: 1, expected: 15 });
    assert.equal(stream.next(report(1, 65_545)), undefined, 'the same report again says nothing');
    assert.deepEqual(stream.next(report(-1, 65_560)), { lost: 0, expected: 15 }, 'duplicates make cumulative loss fall (signed 24 bits): no loss');
    assert.deepEqual(stream.next(report(3, 65_536 + 40)), { lost: 4, expected: 16 }, 'across a sequence-number wrap');

    // 3 % random loss on a 640×480 layer (~90 packets a second) and a 320×240 one (~15): one second
    // the small one loses 2 (13 %), the big one 3: 5 of 105 is under 10 %, so nothing is cut.
    const bwe = new BandwidthEstimator({ initial: 1.2e6, min: 100_000, max: 10e6 });
    bwe.onLoss({ lost: 2, expected: 15 });
    bwe.onLoss({ lost: 3, expected: 90 });
    bwe.update(1000, 1e6);
    assert.equal(bwe.estimate, 1.2e6);
    assert.ok(Math.abs(bwe.lastLoss - 5 / 105) < 1e-9);
    // Only the small layer, one report of 15 packets losing 3 (20 %): too few to judge yet.
    bwe.onLoss({ lost: 3, expected: 15 });
    bwe.update(2000, 150_000);
    assert.equal(bwe.estimate, 1.2e6, `under ${MIN_PACKETS_FOR_LOSS} packets: waits`);
    bwe.onLoss({ lost: 0, expected: 15 });
    bwe.update(3000, 150_000);
    assert.equal(bwe.estimate, 1.2e6, '3 of 30 (10 %): held');
  });
});

describe('thinner smallest layers', () => {
  it('asked for while a subscriber loses with two or more tiles all on the smallest layer, and for a while after', () => {
    const s = new SmallLayerSqueeze();
    assert.equal(s.update(0, 0.08, 1, 1), false, 'one tile alone: never');
    assert.equal(s.update(1000, 0.08, 2, 1), false, 'a tile on a larger layer: that one can step down first');
    assert.equal(s.update(2000, SQUEEZE_LOSS / 2, 2, 2), false, 'losing little: no');
    assert.equal(s.update(3000, 0.08, 2, 2), true);
    assert.equal(s.update(4000, 0, 2, 2), true, 'the loss it stopped is no reason to go back');
    assert.equal(s.update(3000 + SQUEEZE_HOLD_MS - 1, 0, 2, 2), true);
    assert.equal(s.update(3000 + SQUEEZE_HOLD_MS, 0, 2, 2), false);
  });
});

function packet(seq: number, timestamp: number, keyFrameStart: boolean, pictureId = -1, tl0 = -1): SourcePacket {
  return { seq, timestamp, keyFrameStart, pictureId, pictureIdBits: 15, tl0 };
}

describe('layer switching', () => {
  it('switches only on a key frame of the target layer, as one continuous stream', () => {
    const sw = new LayerSwitch(90000);
    sw.setTarget(0);
    assert.equal(sw.accept(0, packet(100, 9000, false), 0), false, 'no start without a key frame');
    assert.equal(sw.accept(0, packet(101, 9000, true, 500, 7), 0), true);
    assert.deepEqual([sw.outSeq, sw.outTimestamp, sw.outPictureId, sw.outTl0], [101, 9000, 500, 7]);
    assert.equal(sw.accept(0, packet(102, 12000, false, 501, 7), 33), true);

    sw.setTarget(2);
    assert.ok(sw.switching);
    // Until layer 2 has a key frame, layer 0 keeps flowing and layer 2's delta frames are dropped.
    assert.equal(sw.accept(2, packet(7000, 500_000, false, 20_000, 90), 40), false);
    assert.equal(sw.accept(0, packet(103, 15000, false, 502, 7), 66), true);
    assert.equal(sw.accept(2, packet(7001, 503_000, true, 20_001, 91), 100), true, 'key frame of the target: switch');
    assert.equal(sw.current, 2);
    assert.equal(sw.outSeq, 104, 'sequence continues without a gap');
    assert.equal(sw.outPictureId, 503, 'PictureID continues');
    assert.equal(sw.outTl0, 8, 'TL0PICIDX continues');
    assert.equal(sw.outTimestamp, 15000 + 34 * 90, 'timestamp advances by the wall-clock time since the last packet');
    assert.equal(sw.accept(0, packet(104, 18000, true, 503, 8), 101), false, 'the old layer is dropped from now on');
    assert.equal(sw.accept(2, packet(7002, 506_000, false, 20_002, 91), 133), true);
    assert.deepEqual([sw.outSeq, sw.outTimestamp - 3000, sw.outPictureId], [105, 15000 + 34 * 90, 504]);

    // A NACK for an outgoing number maps back to the source number of the current layer only.
    assert.equal(sw.sourceSeq(105), 7002);
    assert.equal(sw.sourceSeq(103), -1, 'sent before the switch: another layer');
  });

  it('pausing stops at once; resuming the same source keeps its timestamps and closes the sequence gap', () => {
    const sw = new LayerSwitch(48000);
    sw.setTarget(0);
    assert.ok(sw.accept(0, packet(10, 960, true), 0));
    sw.setTarget(-1);
    assert.equal(sw.accept(0, packet(11, 1920, true), 20), false);
    assert.equal(sw.accept(0, packet(60, 48960, true), 1000), false);
    sw.setTarget(0);
    assert.ok(sw.accept(0, packet(61, 49920, true), 1020));
    assert.deepEqual([sw.outSeq, sw.outTimestamp], [11, 49920]);
  });
});

describe('key-frame requests', () => {
  it('at most one per interval; requests inside it coalesce into one at its end', () => {
    const limiter = new KeyFrameRequestLimiter(500);
    assert.deepEqual(limiter.request(0), { send: true });
    limiter.sent(0);
    assert.deepEqual(limiter.request(100), { send: false, delayMs: 400, alreadyScheduled: false });
    for (let t = 110; t < 500; t += 10) assert.equal((limiter.request(t) as { alreadyScheduled: boolean }).alreadyScheduled, true);
    limiter.sent(500); // the scheduled one
    assert.equal(limiter.request(700).send, false);
    limiter.sent(1000);
    assert.deepEqual(limiter.request(1600), { send: true });
  });
});

describe('loudest speakers', () => {
  it('forwards the three loudest, and changes only for someone clearly louder after a hold time', () => {
    const speakers = new LoudestSpeakers({ max: 3, marginDb: 6, minHoldMs: 1500, floorDb: 10 });
    const levels = (o: Record<string, number>) => new Map(Object.entries(o));
    speakers.update(levels({ a: 60, b: 50, c: 40, d: 30, e: 5 }), 0);
    assert.deepEqual([...speakers.selected].sort(), ['a', 'b', 'c']);
    // d gets a bit louder than c: not enough (margin).
    speakers.update(levels({ a: 60, b: 50, c: 40, d: 44, e: 5 }), 2000);
    assert.deepEqual([...speakers.selected].sort(), ['a', 'b', 'c']);
    // d is clearly louder than c: takes c's place.
    assert.ok(speakers.update(levels({ a: 60, b: 50, c: 40, d: 47, e: 5 }), 2500));
    assert.deepEqual([...speakers.selected].sort(), ['a', 'b', 'd']);
    // c comes back loud at once: d holds its place for 1.5 s; b (held long) is replaced instead.
    speakers.update(levels({ a: 60, b: 30, c: 70, d: 20, e: 5 }), 2600);
    assert.deepEqual([...speakers.selected].sort(), ['a', 'c', 'd']);
    // Someone who leaves frees a place; silence does not take it.
    speakers.update(levels({ c: 70, d: 20, e: 5 }), 5000);
    assert.deepEqual([...speakers.selected].sort(), ['c', 'd']);
  });
});

// ------------------------------------------------------------------ the same logic in Producer/Consumer

/** A VP8 RTP packet with a 15-bit PictureID; a key frame carries its size in the clear VP8 header. */
function vp8(ssrc: number, seq: number, ts: number, pictureId: number, key = false, size?: [number, number]): Buffer {
  const b = Buffer.alloc(12 + 4 + 10 + 20);
  b[0] = 0x80;
  b[1] = 96;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(ts, 4);
  b.writeUInt32BE(ssrc, 8);
  b[12] = 0x80 | (key ? 0x10 : 0x10); // X, S=1, PID=0
  b[13] = 0x80; // I: PictureID present
  b.writeUInt16BE(0x8000 | pictureId, 14);
  b[16] = key ? 0x00 : 0x01; // VP8 P bit: 0 = key frame
  if (key && size) {
    b[19] = 0x9d;
    b[20] = 0x01;
    b[21] = 0x2a;
    b.writeUInt16LE(size[0], 22);
    b.writeUInt16LE(size[1], 24);
  }
  return b;
}

describe('Producer and Consumer', () => {
  it('a subscriber moves from the small to the full layer on the full layer key frame it asked for', () => {
    const ctx: MediaContext = { rtcConfig: { iceServers: [] }, maxIncomingBitrate: 1e6, logger: undefined, counters: newCounters() };
    const upstream = new FakeTrack();
    const downstream = new FakeTrack();
    const producer = new Producer({
      peerId: 'alice', kind: 'video', mid: '1', payloadType: 96, codec: { name: 'VP8', clockRate: 90000 },
      layers: [{ ssrc: 11, rid: 'q' }, { ssrc: 22, rid: 'h' }, { ssrc: 33, rid: 'f' }],
      ctx, rtcpSsrc: 5, onFirstPacket: () => {},
    });
    producer.attachTrack(upstream.asTrack);
    const [q, , f] = producer.layers;
    const consumer = new Consumer({ producer, mid: '0', ssrc: 777, ctx, onClose: () => {} });
    producer.addConsumer(consumer);
    consumer.attachTrack(downstream.asTrack);
    downstream.onOpenCb!();
    consumer.setPayloadType(100);
    consumer.setTargetLayer(0);
    const pliTargets = () => upstream.sent.filter((b) => parseRtcpCompound(b)[0]!.type === 206).map((b) => b.readUInt32BE(8));
    assert.deepEqual(pliTargets(), [11], 'a key frame of the chosen layer is asked for');

    producer.handleRtp(vp8(11, 1000, 90_000, 10, true, [320, 180]), q!, 0);
    producer.handleRtp(vp8(33, 5000, 7_000_000, 900, true, [1280, 720]), f!, 0);
    producer.handleRtp(vp8(11, 1001, 93_000, 11), q!, 33);
    assert.deepEqual(downstream.sent.map(rtpSequenceNumber), [1000, 1001]);
    assert.deepEqual(producer.stats().layers.map((l) => [l.width, l.height]), [[320, 180], [0, 0], [1280, 720]]);

    consumer.setTargetLayer(2);
    assert.deepEqual(pliTargets(), [11, 33]);
    producer.handleRtp(vp8(33, 5001, 7_003_000, 901), f!, 40); // delta frame: not yet
    producer.handleRtp(vp8(11, 1002, 96_000, 12), q!, 66);
    producer.handleRtp(vp8(33, 5002, 7_006_000, 902, true, [1280, 720]), f!, 70);
    producer.handleRtp(vp8(11, 1003, 99_000, 13), q!, 99);
    producer.handleRtp(vp8(33, 5003, 7_009_000, 903), f!, 103);
    const out = downstream.sent;
    assert.deepEqual(out.map(rtpSequenceNumber), [1000, 1001, 1002, 1003, 1004]);
    assert.ok(out.every((b) => rtpSsrc(b) === 777));
    assert.deepEqual(out.map((b) => b.readUInt16BE(14) & 0x7fff), [10, 11, 12, 13, 14], 'PictureID continuous');
    assert.equal(rtpTimestamp(out[4]!) - rtpTimestamp(out[3]!), 3000);

    // A subscriber that cannot decode asks for key frames non-stop: the publisher sees one per 500 ms.
    const before = pliTargets().length;
    for (let i = 0; i < 50; i++) downstream.onMessageCb!(buildPli(1, 777));
    assert.equal(pliTargets().length, before, 'inside the window: coalesced');
    producer.close();
  });
});
