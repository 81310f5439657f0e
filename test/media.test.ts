// Tests of the SFU (src/server/media). The last one is end-to-end with real Chromium pages: A
// publishes its fake camera + mic, B and (later) C subscribe, and the assertions are what a person
// would notice on B's and C's screens. The others run without a browser.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import nodeDataChannel from 'node-datachannel';
import { chromium, type Browser, type Page } from 'playwright-core';
import { WebSocketServer } from 'ws';
import { CHROMIUM_ARGS } from './support/browser.js';
import { InvalidStateError } from '../src/server/media/checks.js';
import type { MediaContext } from '../src/server/media/context.js';
import { newCounters } from '../src/server/media/counters.js';
import { FakeTrack } from './support/fake-track.js';
import { Consumer } from '../src/server/media/consumer.js';
import { KEY_FRAME_REPLAY_MS, Producer } from '../src/server/media/producer.js';
import {
  Router,
  shutdownMediaEngine,
  type PublishTransport,
  type SubscribeTransport,
  type ViewportTile,
} from '../src/server/media/router.js';
import { buildPli, buildRemb, parseRtcpCompound, rtpPayloadType, rtpSequenceNumber, rtpSsrc } from '../src/server/media/rtp.js';
import { PLAYOUT_DELAY_EXTENSION, PLAYOUT_DELAY_EXTENSION_ID } from '../src/server/media/sdp.js';

// --- Without a browser -------------------------------------------------------------------------

const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 7 + 16).toString(16).toUpperCase().padStart(2, '0')).join(':');

/** Shaped like Chromium's offer: extra codecs before VP8, RTX, transport-cc, sendrecv audio. */
function publisherOffer(streamId: string): string {
  const common = [
    'c=IN IP4 0.0.0.0',
    'a=rtcp:9 IN IP4 0.0.0.0',
    'a=ice-ufrag:abcd',
    'a=ice-pwd:abcdefghijklmnopqrstuvwx',
    'a=ice-options:trickle',
    `a=fingerprint:sha-256 ${FINGERPRINT}`,
    'a=setup:actpass',
  ];
  return [
    'v=0',
    'o=- 1 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0 1 2',
    'a=extmap-allow-mixed',
    `a=msid-semantic: WMS ${streamId}`,
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 0',
    ...common,
    'a=mid:0',
    'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
    'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
    'a=sendrecv',
    `a=msid:${streamId} a`,
    'a=rtcp-mux',
    'a=rtpmap:111 opus/48000/2',
    'a=rtcp-fb:111 transport-cc',
    'a=fmtp:111 minptime=10;useinbandfec=1',
    'a=rtpmap:63 red/48000/2',
    'a=fmtp:63 111/111',
    'a=rtpmap:0 PCMU/8000',
    'a=ssrc:1001 cname:c',
    `a=ssrc:1001 msid:${streamId} a`,
    'm=video 9 UDP/TLS/RTP/SAVPF 102 96 97',
    ...common,
    'a=mid:1',
    'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
    'a=sendonly',
    `a=msid:${streamId} v`,
    'a=rtcp-mux',
    'a=rtcp-rsize',
    'a=rtpmap:102 H264/90000',
    'a=rtcp-fb:102 transport-cc',
    'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
    'a=rtpmap:96 VP8/90000',
    'a=rtcp-fb:96 goog-remb',
    'a=rtcp-fb:96 transport-cc',
    'a=rtcp-fb:96 ccm fir',
    'a=rtcp-fb:96 nack',
    'a=rtcp-fb:96 nack pli',
    'a=rtpmap:97 rtx/90000',
    'a=fmtp:97 apt=96',
    'a=ssrc-group:FID 2001 2002',
    'a=ssrc:2001 cname:c',
    'a=ssrc:2002 cname:c',
    // A second camera only in H264: not forwardable.
    'm=video 9 UDP/TLS/RTP/SAVPF 102',
    ...common,
    'a=mid:2',
    'a=sendonly',
    'a=rtcp-mux',
    'a=rtpmap:102 H264/90000',
    'a=ssrc:3001 cname:c',
    '',
  ].join('\r\n');
}

/** A libdatachannel peer standing in for a subscriber's browser: answers whatever it is offered. */
function fakeSubscriberBrowser(): { answer(offer: string): string; close(): void } {
  const pc = new nodeDataChannel.PeerConnection('fake-browser', { iceServers: [], bindAddress: '127.0.0.1' });
  return {
    answer(offer) {
      pc.setRemoteDescription(offer, 'offer');
      const answer = pc.localDescription();
      assert.equal(answer?.type, 'answer');
      return answer.sdp;
    },
    close: () => pc.close(),
  };
}

const mLines = (sdp: string): string[] => sdp.split('\r\n').filter((l) => l.startsWith('m='));
const turn = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

test('publish answer: VP8 + opus only, transport-cc kept, no RTX, unsupported m-line inactive', async () => {
  const router = new Router({ bindAddress: '127.0.0.1' });
  try {
    const pub = router.createPublishTransport('alice');
    const emitted: string[] = [];
    pub.on('producer', (p) => emitted.push(p.kind));
    const answer = await pub.answer(publisherOffer('s'));
    const m = mLines(answer);
    assert.match(m[0]!, /^m=audio [1-9]\d* UDP\/TLS\/RTP\/SAVPF 111$/);
    assert.match(m[1]!, /^m=video [1-9]\d* UDP\/TLS\/RTP\/SAVPF 96$/);
    assert.match(m[2]!, /^m=video [1-9]\d* /);
    const sections = answer.split(/(?=m=)/).slice(1);
    for (const section of sections) {
      assert.doesNotMatch(section, /a=rtpmap:\d+ (?:rtx|red)\//i);
    }
    // We send transport-cc feedback, so the browser's delay-based controller works upstream.
    assert.match(sections[1]!, /a=rtcp-fb:96 transport-cc/);
    assert.match(sections[1]!, /a=extmap:\d+ http:\/\/www\.ietf\.org\/id\/draft-holmer-rmcat-transport-wide-cc-extensions-01/);
    assert.doesNotMatch(sections[1]!, /H264/);
    assert.match(sections[1]!, /a=rtcp-fb:96 goog-remb/);
    assert.match(sections[0]!, /a=recvonly/, 'we never send to a publisher');
    assert.match(sections[1]!, /a=recvonly/);
    assert.match(sections[2]!, /a=inactive/, 'H264-only camera: nothing we could forward');
    assert.match(answer, /a=candidate:/, 'non-trickle: candidates inside the answer');
    assert.deepEqual(emitted.sort(), ['audio', 'video']);
    assert.equal(router.producers.size, 2);
  } finally {
    router.close();
  }
});

test('subscriber renegotiation is serialised and merged; producers never cross routers', async () => {
  const router = new Router({ bindAddress: '127.0.0.1' });
  const other = new Router({ bindAddress: '127.0.0.1' });
  const browser = fakeSubscriberBrowser();
  const carolBrowser = fakeSubscriberBrowser();
  try {
    const alice = router.createPublishTransport('alice');
    await alice.answer(publisherOffer('s'));
    const dave = router.createPublishTransport('dave');
    await dave.answer(publisherOffer('t'));
    const [aAudio, aVideo] = [...alice.producers.values()].sort((x, y) => x.kind.localeCompare(y.kind));
    const daveVideo = [...dave.producers.values()].find((p) => p.kind === 'video')!;

    const offers: string[] = [];
    const sub = router.createSubscribeTransport('bob', (sdp) => offers.push(sdp));
    const cAudio = sub.consume(aAudio!);
    const cVideo = sub.consume(aVideo!);
    await turn();
    assert.equal(offers.length, 1, 'two consume() calls in one turn make one offer');
    // First m-line: the placeholder that keeps the transport alive when all tracks are gone.
    assert.equal(mLines(offers[0]!).length, 3);
    assert.match(offers[0]!.split(/(?=m=)/)[1]!, /a=mid:keepalive\r\n(?:.*\r\n)*a=inactive/);
    assert.match(offers[0]!, new RegExp(`a=msid:alice ${cAudio.id}\r\n`));
    assert.match(offers[0]!, new RegExp(`a=msid:alice ${cVideo.id}\r\n`));
    assert.doesNotMatch(offers[0]!, /a=rtpmap:\d+ rtx\/|transport-cc/i);
    // The one header extension offered downstream: playout delay, on video.
    assert.deepEqual(offers[0]!.match(/a=extmap:.*/g), [`a=extmap:${PLAYOUT_DELAY_EXTENSION_ID} ${PLAYOUT_DELAY_EXTENSION}`]);

    const cDave = sub.consume(daveVideo);
    await turn();
    assert.equal(offers.length, 1, 'no new offer while one is outstanding');
    await sub.setAnswer(browser.answer(offers[0]!));
    await turn();
    assert.equal(offers.length, 2, 'queued change goes out after the answer');
    assert.match(offers[1]!, new RegExp(`a=msid:dave ${cDave.id}\r\n`));

    // The publisher leaves while an offer is outstanding: its m-lines are removed next time.
    alice.close();
    assert.ok(cAudio.closed && cVideo.closed);
    assert.equal(sub.consumers.size, 1);
    await turn();
    assert.equal(offers.length, 2);
    await sub.setAnswer(browser.answer(offers[1]!));
    await turn();
    assert.equal(offers.length, 3);
    const m = mLines(offers[2]!);
    assert.match(m[0]!, /^m=audio [1-9]/);
    assert.match(m[1]!, /^m=audio 0 /);
    assert.match(m[2]!, /^m=video 0 /);
    assert.match(m[3]!, /^m=video [1-9]/);
    assert.match(offers[2]!.split(/(?=m=)/)[4]!, /a=sendonly/);
    await sub.setAnswer(browser.answer(offers[2]!));
    await assert.rejects(sub.setAnswer(browser.answer(offers[2]!)), /no outstanding offer/);

    // Our candidates wait for the first answer: a browser that has them checks before its answer
    // reaches us, and libdatachannel can then fail the connection (docs/MEDIA.md).
    assert.doesNotMatch(offers[0]!, /a=candidate:|a=end-of-candidates/);
    assert.match(offers[1]!, /a=candidate:/, 'the offer after the first answer carries our candidates');

    const lone: string[] = [];
    const carol = router.createSubscribeTransport('carol', (sdp) => lone.push(sdp));
    carol.connect();
    await turn();
    assert.equal(lone.length, 1);
    assert.doesNotMatch(lone[0]!, /a=candidate:/);
    await carol.setAnswer(carolBrowser.answer(lone[0]!));
    await turn();
    assert.equal(lone.length, 2, 'the first answer brings an offer with our candidates, even with nothing else new');
    assert.match(lone[1]!, /a=candidate:/);
    await carol.setAnswer(carolBrowser.answer(lone[1]!));
    await turn();
    assert.equal(lone.length, 2, 'and only one');

    const foreign = other.createSubscribeTransport('eve', () => {});
    assert.throws(() => foreign.consume(daveVideo), /does not belong/);
  } finally {
    browser.close();
    carolBrowser.close();
    other.close();
    router.close();
  }
});

test('close cascades, is idempotent, and closed objects refuse calls', async () => {
  const router = new Router({ bindAddress: '127.0.0.1' });
  const closed: string[] = [];
  router.on('close', () => closed.push('router'));
  const pub = router.createPublishTransport('alice');
  pub.on('close', () => closed.push('pub'));
  await pub.answer(publisherOffer('s'));
  const video = [...pub.producers.values()].find((p) => p.kind === 'video')!;
  video.on('close', () => closed.push('producer'));
  const sub = router.createSubscribeTransport('bob', () => {});
  sub.on('close', () => closed.push('sub'));
  const consumer = sub.consume(video);
  consumer.on('close', () => closed.push('consumer'));

  router.close();
  router.close();
  assert.deepEqual(closed.sort(), ['consumer', 'producer', 'pub', 'router', 'sub']);
  assert.throws(() => router.createPublishTransport('x'), /Router is closed/);
  assert.throws(() => router.createSubscribeTransport('x', () => {}), /Router is closed/);
  assert.throws(() => sub.consume(video), /SubscribeTransport is closed/);
  await assert.rejects(pub.answer(publisherOffer('s')), /PublishTransport is closed/);
  await assert.rejects(sub.setAnswer('v=0'), /SubscribeTransport is closed/);
  assert.throws(() => video.requestKeyFrame(), /Producer is closed/);
  pub.close();
  sub.close();
  video.close();
  consumer.close();

  const fresh = new Router();
  assert.throws(() => fresh.createPublishTransport('has space'), /peerId/);
  assert.throws(() => fresh.createSubscribeTransport('', () => {}), /peerId/);
  fresh.close();
});

test('wrong arguments throw TypeError showing the value, and calls on a closed object throw InvalidStateError', async () => {
  const typeError = (shows: string) => (err: unknown) => err instanceof TypeError && err.message.includes(shows);
  const invalidState = (err: unknown) => err instanceof InvalidStateError && err.name === 'InvalidStateError';
  const router = new Router({ bindAddress: '127.0.0.1' });
  assert.throws(() => router.createPublishTransport('has space'), typeError('got "has space"'));
  assert.throws(() => router.createSubscribeTransport(7 as never, () => {}), typeError('got 7'));
  assert.throws(() => router.createSubscribeTransport('bob', 'call me' as never), typeError('got "call me"'));
  const pub = router.createPublishTransport('alice');
  await assert.rejects(pub.answer(''), typeError('got ""'));
  await pub.answer(publisherOffer('s'));
  const video = [...pub.producers.values()].find((p) => p.kind === 'video')!;
  const sub = router.createSubscribeTransport('bob', () => {});
  await assert.rejects(sub.setAnswer('v=0'), invalidState, 'an answer with no offer outstanding');

  router.close();
  assert.throws(() => router.createPublishTransport('carol'), invalidState);
  assert.throws(() => sub.consume(video), invalidState);
  assert.throws(() => sub.setViewport([]), invalidState);
  await assert.rejects(pub.answer(publisherOffer('s')), invalidState);
  assert.throws(() => video.requestKeyFrame(), invalidState);
});

function rtp(seq: number, pt: number, ssrc: number, marker = false, keyFrame = false): Buffer {
  const b = Buffer.alloc(40);
  b[0] = 0x80;
  b[1] = (marker ? 0x80 : 0) | pt;
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(seq * 3000, 4);
  b.writeUInt32BE(ssrc, 8);
  // VP8 payload descriptor: S=1, PID=0 starts a frame; VP8 header P bit 0 = key frame.
  b[12] = keyFrame ? 0x10 : 0x00;
  b[13] = keyFrame ? 0x00 : 0x01;
  return b;
}

function nack(mediaSsrc: number, pid: number, blp: number): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x81;
  b[1] = 205;
  b.writeUInt16BE(3, 2);
  b.writeUInt32BE(1, 4);
  b.writeUInt32BE(mediaSsrc, 8);
  b.writeUInt16BE(pid, 12);
  b.writeUInt16BE(blp, 14);
  return b;
}

test('packet path: PT/SSRC rewrite, RTX dropped, PLI rate limit, NACK, sender reports', async () => {
  const ctx: MediaContext = { rtcConfig: { iceServers: [] }, maxIncomingBitrate: 1e6, logger: undefined, counters: newCounters() };
  const upstream = new FakeTrack();
  const downstream = new FakeTrack();
  const producer = new Producer({
    peerId: 'alice', kind: 'video', mid: '1', payloadType: 96, codec: { name: 'VP8', clockRate: 90000 },
    layers: [{ ssrc: 2001, rid: undefined }], ctx, rtcpSsrc: 5, onFirstPacket: () => {},
  });
  const layer = producer.layers[0]!;
  producer.attachTrack(upstream.asTrack);
  const consumer = new Consumer({ producer, mid: '0', ssrc: 777, ctx, onClose: () => {} });
  producer.addConsumer(consumer);
  consumer.setTargetLayer(0);
  consumer.attachTrack(downstream.asTrack);
  downstream.onOpenCb!();
  assert.equal(upstream.sent.length, 0, 'nothing before the answer is applied');
  consumer.setPayloadType(100);
  assert.equal(upstream.sent.length, 1, 'a starting video consumer asks for a key frame');
  const pli = parseRtcpCompound(upstream.sent[0]!)[0]!;
  assert.deepEqual([pli.type, pli.count, upstream.sent[0]!.readUInt32BE(8)], [206, 1, 2001]);

  producer.handleRtp(rtp(10, 96, 2001, true, true), layer, performance.now());
  producer.handleRtp(rtp(10, 97, 2002), layer, performance.now()); // RTX
  assert.equal(downstream.sent.length, 1);
  const out = downstream.sent[0]!;
  assert.deepEqual([rtpPayloadType(out), rtpSsrc(out), rtpSequenceNumber(out), out[1]! >> 7], [100, 777, 10, 1]);
  assert.equal(ctx.counters.rtpDropped, 1);

  downstream.onMessageCb!(nack(777, 10, 0));
  assert.equal(downstream.sent.length, 2);
  assert.deepEqual([rtpSsrc(downstream.sent[1]!), rtpSequenceNumber(downstream.sent[1]!)], [777, 10]);
  downstream.onMessageCb!(nack(777, 10, 0));
  assert.equal(downstream.sent.length, 2, 'the same packet is not resent again within one round trip');

  // A flood of PLIs from the subscriber becomes one more PLI, at the end of the 500 ms window.
  for (let i = 0; i < 10; i++) downstream.onMessageCb!(buildPli(1, 777));
  downstream.onMessageCb!(buildPli(1, 12345)); // aimed at another SSRC: not ours to act on
  assert.equal(upstream.sent.length, 1);
  const deadline = Date.now() + 2000;
  while (upstream.sent.length < 2 && Date.now() < deadline) await turn();
  assert.equal(upstream.sent.length, 2);
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(upstream.sent.length, 2, 'coalesced into exactly one request');


  producer.handleSenderReport({ ssrc: 2001, ntpSeconds: 1, ntpFraction: 2, rtpTimestamp: 3 }, layer, 5);
  const sr = downstream.sent[2]!;
  assert.deepEqual([sr[1], sr.readUInt32BE(4), sr.readUInt32BE(16)], [200, 777, 3]);

  consumer.close();
  assert.equal(producer.stats().consumers, 0);
  producer.handleRtp(rtp(12, 96, 2001), layer, 3);
  assert.equal(downstream.sent.length, 3);
  producer.close();
});

test('a subscriber that starts gets the key frame that just went by, with no request to the publisher', () => {
  const ctx: MediaContext = { rtcConfig: { iceServers: [] }, maxIncomingBitrate: 1e6, logger: undefined, counters: newCounters() };
  const upstream = new FakeTrack();
  const producer = new Producer({
    peerId: 'alice', kind: 'video', mid: '1', payloadType: 96, codec: { name: 'VP8', clockRate: 90000 },
    layers: [{ ssrc: 2001, rid: undefined }], ctx, rtcpSsrc: 5, onFirstPacket: () => {},
  });
  const layer = producer.layers[0]!;
  producer.attachTrack(upstream.asTrack);
  const subscribe = () => {
    const downstream = new FakeTrack();
    const consumer = new Consumer({ producer, mid: '0', ssrc: 900, ctx, onClose: () => {} });
    producer.addConsumer(consumer);
    consumer.setTargetLayer(0);
    consumer.attachTrack(downstream.asTrack);
    downstream.onOpenCb!();
    consumer.setPayloadType(100);
    return downstream;
  };
  // A key frame in two packets, then two delta frames, a moment ago.
  const now = performance.now();
  producer.handleRtp(rtp(50, 96, 2001, false, true), layer, now - 40);
  producer.handleRtp(rtp(51, 96, 2001, true), layer, now - 39);
  producer.handleRtp(rtp(52, 96, 2001, true), layer, now - 6);
  producer.handleRtp(rtp(53, 96, 2001, true), layer, now - 1);
  const fresh = subscribe();
  assert.deepEqual(fresh.sent.map(rtpSequenceNumber), [50, 51, 52, 53], 'the key frame and what followed it, in order');
  assert.equal(upstream.sent.length, 0, 'no key frame asked of the publisher');
  // Live packets follow on.
  producer.handleRtp(rtp(54, 96, 2001, true), layer, performance.now());
  assert.deepEqual(fresh.sent.map(rtpSequenceNumber), [50, 51, 52, 53, 54]);

  // A key frame from longer ago is not replayed (too much old video at once): the publisher is asked.
  producer.handleRtp(rtp(55, 96, 2001, true, true), layer, performance.now() - KEY_FRAME_REPLAY_MS - 100);
  const late = subscribe();
  assert.equal(late.sent.length, 0);
  assert.equal(upstream.sent.length, 1, 'a PLI for the late subscriber');
  producer.close();
});

test('REMB encodes the bitrate as exponent + mantissa', () => {
  const remb = buildRemb(9, 2_000_000, [1, 2]);
  const [p] = parseRtcpCompound(remb);
  assert.deepEqual([p!.type, p!.count, p!.length], [206, 15, 28]);
  assert.equal(remb.toString('ascii', 12, 16), 'REMB');
  const word = remb.readUInt32BE(16);
  const bitrate = (word & 0x3ffff) * 2 ** ((word >>> 18) & 0x3f);
  assert.equal(word >>> 24, 2);
  assert.ok(Math.abs(bitrate - 2_000_000) / 2_000_000 < 0.001);
});

// --- With Chromium -----------------------------------------------------------------------------

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// Test-only page: publish or subscribe depending on ?role=. Everything it observes goes into
// window.obs for the test to read.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>media test</title></head>
<body><video id="v" autoplay playsinline muted width="640" height="480"></video><audio id="a" autoplay></audio>
<script>
const params = new URLSearchParams(location.search);
const peer = params.get('peer');
const obs = (window.obs = { errors: [], tracks: [], offers: 0, frames: 0, firstFrameAt: 0 });
addEventListener('error', (e) => obs.errors.push(String(e.message)));
addEventListener('unhandledrejection', (e) => obs.errors.push(String(e.reason)));

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => pc.addEventListener('icegatheringstatechange', () => {
    if (pc.iceGatheringState === 'complete') resolve();
  }));
}

async function publish() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true, video: { width: 640, height: 480, frameRate: 30 },
  });
  const pc = (window.pc = new RTCPeerConnection());
  // ?sim=1: simulcast as the app sends it from a 640x480 camera (src/ui/call/media.ts): two
  // layers, as Chromium sends no more below 960 px of width.
  const sendEncodings = params.get('sim') === '1'
    ? [{ rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f', scaleResolutionDownBy: 1 }]
    : undefined;
  for (const track of stream.getTracks()) {
    pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], ...(track.kind === 'video' && sendEncodings ? { sendEncodings } : {}) });
  }
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const res = await fetch('/publish?peer=' + peer, { method: 'POST', body: pc.localDescription.sdp });
  if (!res.ok) throw new Error('publish failed: ' + res.status + ' ' + (await res.text()));
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  obs.published = true;
}

function subscribe() {
  const pc = (window.pc = new RTCPeerConnection());
  const video = document.getElementById('v');
  pc.ontrack = (e) => {
    const t = { kind: e.track.kind, streamId: e.streams[0] && e.streams[0].id, events: [] };
    obs.tracks.push(t);
    t.track = e.track;
    for (const ev of ['mute', 'unmute', 'ended']) e.track.addEventListener(ev, () => t.events.push(ev));
    e.streams[0]?.addEventListener('removetrack', (r) => { if (r.track === e.track) t.events.push('removed'); });
    if (e.track.kind === 'video') video.srcObject = e.streams[0];
    // Played out loud: Chromium only computes received audio levels for audio that is played.
    else document.getElementById('a').srcObject = new MediaStream([e.track]);
  };
  const countFrame = (now) => {
    obs.frames++;
    if (!obs.firstFrameAt) obs.firstFrameAt = Date.now();
    video.requestVideoFrameCallback(countFrame);
  };
  video.requestVideoFrameCallback(countFrame);
  const ws = new WebSocket('ws://' + location.host + '/subscribe?peer=' + peer);
  let chain = Promise.resolve();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    chain = chain.then(async () => {
      await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
      ws.send(JSON.stringify({ type: 'answer', sdp: pc.localDescription.sdp }));
      obs.offers++;
    }).catch((err) => obs.errors.push('negotiation: ' + err));
  };
  ws.onerror = () => obs.errors.push('websocket error');
  window.sendViewport = (tiles) => ws.send(JSON.stringify({ type: 'viewport', tiles }));
}

async function audioStats() {
  const out = { packets: 0, energy: 0 };
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      out.packets += s.packetsReceived || 0;
      out.energy += s.totalAudioEnergy || 0;
    }
  }
  return out;
}
window.audioStats = audioStats;

(params.get('role') === 'pub' ? publish() : Promise.resolve(subscribe()))
  .catch((err) => obs.errors.push(String(err)));
</script></body></html>`;

interface Harness {
  url: string;
  router: Router;
  publishers: Map<string, PublishTransport>;
  subscribers: Map<string, SubscribeTransport>;
  serverErrors: string[];
  close(): Promise<void>;
}

async function startHarness(): Promise<Harness> {
  const serverErrors: string[] = [];
  const router = new Router({ bindAddress: '127.0.0.1', logger: { warn: (msg) => serverErrors.push(msg) } });
  const publishers = new Map<string, PublishTransport>();
  const subscribers = new Map<string, SubscribeTransport>();

  // The room layer's job in the product: everyone admitted consumes everyone else.
  const consumeAll = (sub: SubscribeTransport, producers: Iterable<Producer>): void => {
    for (const p of producers) if (p.peerId !== sub.peerId) sub.consume(p);
  };
  router.on('producer', (p) => {
    for (const sub of subscribers.values()) consumeAll(sub, [p]);
  });

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      return;
    }
    if (req.method === 'POST' && url.pathname === '/publish') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const fail = (err: Error): void => {
          serverErrors.push(`publish: ${err.message}`);
          res.writeHead(400).end(err.message);
        };
        try {
          const peer = url.searchParams.get('peer') ?? '';
          const transport = router.createPublishTransport(peer);
          publishers.set(peer, transport);
          transport.answer(Buffer.concat(chunks).toString()).then(
            (answer) => res.writeHead(200, { 'content-type': 'application/sdp' }).end(answer),
            fail,
          );
        } catch (err) {
          fail(err as Error);
        }
      });
      return;
    }
    res.writeHead(404).end();
  });

  const wss = new WebSocketServer({ server, path: '/subscribe' });
  wss.on('connection', (ws, req) => {
    const peer = new URL(req.url ?? '/', 'http://x').searchParams.get('peer') ?? '';
    const sub = router.createSubscribeTransport(peer, (sdp) => ws.send(JSON.stringify({ type: 'offer', sdp })));
    subscribers.set(peer, sub);
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { type: string; sdp: string; tiles: ViewportTile[] };
      if (msg.type === 'answer') sub.setAnswer(msg.sdp).catch((err: Error) => serverErrors.push(`answer: ${err.message}`));
      if (msg.type === 'viewport') sub.setViewport(msg.tiles);
    });
    ws.on('close', () => sub.close());
    consumeAll(sub, router.producers.values());
  });

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    router,
    publishers,
    subscribers,
    serverErrors,
    async close() {
      router.close();
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** What the test page records in window.obs. */
interface PageObs {
  errors: string[];
  published?: boolean;
  offers: number;
  frames: number;
  firstFrameAt: number;
  tracks: { kind: string; streamId: string | undefined; events: string[]; track: MediaStreamTrack }[];
}
/** The test page's window (page functions run in the browser and cannot share helpers). */
type TestWindow = Window & {
  obs: PageObs;
  audioStats(): Promise<{ packets: number; energy: number }>;
  sendViewport(tiles: ViewportTile[]): void;
};
type Obs = Omit<PageObs, 'tracks'> & { tracks: Omit<PageObs['tracks'][number], 'track'>[] };

const obs = (page: Page): Promise<Obs> =>
  page.evaluate(() => {
    const o = (window as unknown as TestWindow).obs;
    return { ...o, tracks: o.tracks.map(({ kind, streamId, events }) => ({ kind, streamId, events: [...events] })) };
  });

const videoState = (page: Page) =>
  page.evaluate(() => {
    const v = document.querySelector('video')!;
    return {
      width: v.videoWidth,
      height: v.videoHeight,
      currentTime: v.currentTime,
      frames: (window as unknown as TestWindow).obs.frames,
      at: performance.now(),
    };
  });

const audioStats = (page: Page) =>
  page.evaluate(() => (window as unknown as TestWindow).audioStats());

async function waitForVga(page: Page, timeoutMs: number, why: () => Promise<string>): Promise<void> {
  try {
    await page.waitForFunction(
      () => {
        const v = document.querySelector('video')!;
        return v.videoWidth === 640 && v.videoHeight === 480 && v.currentTime > 0;
      },
      undefined,
      { timeout: timeoutMs, polling: 100 },
    );
  } catch (err) {
    const size = await page.evaluate(() => {
      const v = document.querySelector('video')!;
      return `${v.videoWidth}x${v.videoHeight} at ${v.currentTime.toFixed(1)} s`;
    });
    throw new Error(`no 640x480 picture within ${timeoutMs} ms (shows ${size}; ${await why()})`, { cause: err });
  }
}

/** What the publisher's encoder sends per layer, from its page's getStats. */
const encoderLayers = (page: Page): Promise<string> =>
  page.evaluate(async () => {
    const out: string[] = [];
    const pc = (window as unknown as { pc: RTCPeerConnection }).pc;
    for (const s of (await pc.getStats()).values()) {
      if (s.type !== 'outbound-rtp' || s.kind !== 'video') continue;
      out.push(`${s.rid}: ${s.frameWidth ?? 0}x${s.frameHeight ?? 0} ${s.framesPerSecond ?? 0} fps, limited by ${s.qualityLimitationReason}`);
    }
    return out.join('; ');
  });

let browser: Browser | undefined;
let harness: Harness | undefined;

after(async () => {
  await browser?.close();
  await harness?.close();
  shutdownMediaEngine();
});

test('SFU forwards a Chromium camera to subscribers at full quality', { timeout: 150_000 }, async (t) => {
  harness = await startHarness();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, '--allow-loopback-in-peer-connection'],
  });
  const context = await browser.newContext();
  const open = async (query: string): Promise<Page> => {
    const page = await context.newPage();
    await page.goto(`${harness!.url}?${query}`);
    return page;
  };

  const pageA = await open('role=pub&peer=alice&sim=1');
  await pageA.waitForFunction(() => (window as unknown as TestWindow).obs.published, undefined, {
    timeout: 10_000,
  });
  const producers = [...harness.publishers.get('alice')!.producers.values()];
  assert.deepEqual(producers.map((p) => p.kind).sort(), ['audio', 'video']);
  const videoProducer = producers.find((p) => p.kind === 'video')!;

  // B subscribes; the quality target is counted from this moment.
  const subscribedAt = Date.now();
  const pageB = await open('role=sub&peer=bob');
  let pageC: Page | undefined;
  // A timeout says where the 640x480 picture stopped: the encoder, the SFU's choice, or the page.
  const why = (peer: string) => async (): Promise<string> => {
    const sub = harness!.subscribers.get(peer);
    const video = [...(sub?.consumers.values() ?? [])].find((c) => c.kind === 'video');
    const kbit = (n = 0): number => Math.round(n / 1000);
    const rates = `estimate ${kbit(sub?.rates.estimate)}, sending ${kbit(sub?.rates.sending)} (audio ${kbit(sub?.rates.audio)}) kbit/s`;
    const layers = videoProducer.layerStates.map((l, i) => `${i}: ${l.width}x${l.height} ${kbit(l.bitrate)} kbit/s${l.active ? '' : ' inactive'}`);
    const subscriberPage = peer === 'bob' ? pageB : pageC!;
    const page = await obs(subscriberPage);
    const pcState = await subscriberPage.evaluate(() => {
      const pc = (window as unknown as { pc: RTCPeerConnection }).pc;
      return `${pc.connectionState}/${pc.iceConnectionState}`;
    });
    const negotiation = `consumers ${[...(sub?.consumers.values() ?? [])].map((c) => c.kind).join('+') || 'none'}, negotiation ${JSON.stringify(sub?.negotiation)}, page: ${pcState}, ${page.offers} offers, tracks ${page.tracks.map((t) => t.kind).join('+') || 'none'}, errors ${JSON.stringify(page.errors)}, server warned ${JSON.stringify(harness!.serverErrors)}`;
    return `publisher's layers at the SFU ${layers.join(', ')}; SFU sends layer ${video?.layers.current} (target ${video?.layers.target}), ${rates}; ${negotiation}; encoder ${await encoderLayers(pageA)}`;
  };
  await waitForVga(pageB, 10_000, why('bob'));
  const vgaAfterMs = Date.now() - subscribedAt;

  // The UI groups a participant's tracks by stream id: it must be the publisher's peerId.
  const obsB = await obs(pageB);
  assert.deepEqual(obsB.tracks.map((t) => t.kind).sort(), ['audio', 'video']);
  for (const t of obsB.tracks) assert.equal(t.streamId, 'alice');

  // C joins late, long after A's initial key frame: it only sees video if a PLI reaches A.
  const pliBeforeC = videoProducer.stats().keyFrameRequests;
  const cJoinedAt = Date.now();
  pageC = await open('role=sub&peer=carol');
  await waitForVga(pageC, 8_000, why('carol'));
  const cFirstFrameMs = (await obs(pageC)).firstFrameAt - cJoinedAt;
  assert.ok(videoProducer.stats().keyFrameRequests > pliBeforeC, 'consuming must request a key frame');

  // Frame rate on B, measured over ~3 s starting ~10 s after B subscribed (once the
  // bandwidth estimate had time to settle, or to collapse if the trap were back).
  const waitMs = subscribedAt + 10_000 - Date.now();
  if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
  const s1 = await videoState(pageB);
  const a1 = await audioStats(pageB);
  await new Promise((r) => setTimeout(r, 3_000));
  const s2 = await videoState(pageB);
  const a2 = await audioStats(pageB);
  const fps = ((s2.frames - s1.frames) * 1000) / (s2.at - s1.at);
  assert.equal(s2.width, 640);
  assert.equal(s2.height, 480);
  assert.ok(s2.currentTime > s1.currentTime + 2, `video time must advance (${s1.currentTime} -> ${s2.currentTime})`);
  assert.ok(fps >= 15, `B renders ${fps.toFixed(1)} fps, want >= 15`);

  const audioTrackLive = await pageB.evaluate(() =>
    (window as unknown as TestWindow).obs.tracks.some(
      (t) => t.kind === 'audio' && t.track.readyState === 'live' && !t.track.muted,
    ),
  );
  assert.ok(audioTrackLive, 'B has a live audio track');
  assert.ok(a2.packets > a1.packets + 50, `audio packets keep arriving (${a1.packets} -> ${a2.packets})`);
  assert.ok(a2.energy > a1.energy, `B hears A's microphone (audio energy ${a1.energy} -> ${a2.energy})`);

  // A leaves: B's and C's tracks from A end, without errors in the pages.
  // Simulcast: A sends three layers; a subscriber's tile size picks one, switching only on key frames.
  const layerSizes = videoProducer.stats().layers.map((l) => `${l.width}x${l.height}`);
  assert.deepEqual(layerSizes, ['320x240', '640x480'], 'both simulcast layers arrive');
  const bobVideo = [...harness.subscribers.get('bob')!.consumers.values()].find((c) => c.kind === 'video')!;
  const waitForSize = (page: Page, width: number) =>
    page.waitForFunction(
      (w) => {
        const v = document.querySelector('video')!;
        return v.videoWidth === w;
      },
      width,
      { timeout: 10_000, polling: 100 },
    );
  await pageB.evaluate(() => (window as unknown as TestWindow).sendViewport([{ participantId: 'alice', width: 150, height: 110 }]));
  await waitForSize(pageB, 320);
  assert.equal(bobVideo.layers.current, 0, 'a small tile gets the smallest layer');
  const small1 = await videoState(pageB);
  await new Promise((r) => setTimeout(r, 1_000));
  const small2 = await videoState(pageB);
  assert.ok(small2.frames > small1.frames + 10, `the small layer plays (${small2.frames - small1.frames} frames in 1 s)`);
  await pageB.evaluate(() => (window as unknown as TestWindow).sendViewport([]));
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(bobVideo.layers.current, -1, 'an off-screen tile gets nothing');
  const hidden1 = await videoState(pageB);
  await new Promise((r) => setTimeout(r, 1_000));
  const hidden2 = await videoState(pageB);
  assert.ok(hidden2.frames - hidden1.frames <= 1, `no frames while not shown (${hidden2.frames - hidden1.frames})`);
  await pageB.evaluate(() => (window as unknown as TestWindow).sendViewport([{ participantId: 'alice', width: 640, height: 480 }]));
  await waitForSize(pageB, 640);
  const big1 = await videoState(pageB);
  await new Promise((r) => setTimeout(r, 1_000));
  const big2 = await videoState(pageB);
  assert.ok(big2.frames > big1.frames + 10, `back to the full layer, playing (${big2.frames - big1.frames} frames in 1 s)`);
  assert.equal((await videoState(pageC)).width, 640, 'C, which sent no viewport, kept the full layer');

  harness.publishers.get('alice')!.close();
  for (const page of [pageB, pageC]) {
    await page.waitForFunction(
      () =>
        (window as unknown as TestWindow).obs.tracks.every(
          (t) => t.events.includes('ended') || t.events.includes('mute'),
        ),
      undefined,
      { timeout: 10_000, polling: 100 },
    );
  }
  assert.equal(harness.router.producers.size, 0);
  for (const sub of harness.subscribers.values()) assert.equal(sub.consumers.size, 0);

  // D publishes next: B, whose every m-line was just removed, must still receive it.
  const framesBeforeD = (await obs(pageB)).frames;
  const pageD = await open('role=pub&peer=dave');
  await pageB.waitForFunction(
    (before) => {
      const o = (window as unknown as TestWindow).obs;
      const v = document.querySelector('video')!;
      const live = o.tracks.filter((t) => t.streamId === 'dave' && t.track.readyState === 'live');
      return live.length === 2 && o.frames > before + 10 && v.videoWidth === 640;
    },
    framesBeforeD,
    { timeout: 15_000, polling: 100 },
  );

  for (const page of [pageA, pageB, pageC, pageD]) assert.deepEqual((await obs(page)).errors, []);
  assert.deepEqual(harness.serverErrors, []);

  const stats = harness.router.stats();
  t.diagnostic(
    `B 640x480 after ${vgaAfterMs} ms, ${fps.toFixed(1)} fps at ~10 s; C first frame after ${cFirstFrameMs} ms; ` +
      `PLIs sent ${stats.keyFrameRequestsSent}, coalesced ${stats.keyFrameRequestsCoalesced}, RTP dropped ${stats.rtpDropped}`,
  );
});
