/**
 * Calls across bad links, asserting what a person would notice, with bounds generous enough for
 * a busy 2-core machine: a bloated uplink does not leave the other person's picture seconds
 * behind, after a bandwidth drop video comes back, and one person's narrow downlink in a group
 * neither stops their video nor blurs everyone else's. `npx tsx bench/network.ts` measures the
 * same scenarios properly, against a direct call. Skips, saying why, where namespaces cannot be
 * made.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { frameRateSeries, largestSent, linkcallCall, linkcallGroupCall, perStream, quality, Recorder, secondsUntil } from '../support/lab-call.js';
import { labUnavailable, NetLab, type LabServer } from '../support/netlab.js';
import { sleep } from '../support/wait.js';

const unavailable = labUnavailable();
if (unavailable) console.log(`# network lab skipped: ${unavailable}`);

describe('calls across bad links', { skip: unavailable }, () => {
  let lab: NetLab;
  let server: LabServer;
  before(async () => {
    lab = await NetLab.create(['server', 'host', 'guest', 'guest2']);
    server = await lab.startServer('server');
  });
  after(async () => {
    await server?.close();
    await lab?.close();
  });

  test("behind the guest's bloated 600 kbit/s uplink, the host sees the guest less than a second late once the call has settled", async () => {
    await lab.clear();
    for (const p of ['host', 'guest']) await lab.impair(p, 'both', { delayMs: 20 });
    await lab.impair('guest', 'up', { rateKbps: 600, queueMs: 1000 });
    const call = await linkcallCall(lab, server);
    try {
      const recorder = new Recorder(call);
      recorder.start();
      await sleep(10_000);
      const from = Date.now();
      await sleep(10_000);
      await recorder.stop();
      const seen = quality(recorder.samples, 'host', from, Date.now());
      assert.ok(seen.framesTimed > 30, `the host saw ${seen.framesTimed} of the guest's frames in 10 s`);
      assert.ok(seen.delayP95Ms < 1000, `glass-to-glass p95 ${seen.delayP95Ms} ms (median ${seen.delayMedianMs} ms)`);
    } finally {
      await call.close();
    }
  });

  test("after the guest's downlink drops from 4 to 0.3 Mbit/s, the host's video comes back to 15 frames a second while the bandwidth stays low", async () => {
    await lab.clear();
    for (const p of ['host', 'guest']) await lab.impair(p, 'both', { delayMs: 20 });
    await lab.impair('guest', 'down', { rateKbps: 4000, queueMs: 200 });
    const call = await linkcallCall(lab, server);
    try {
      const recorder = new Recorder(call);
      recorder.start();
      await sleep(6000);
      await lab.impair('guest', 'down', { rateKbps: 300 });
      const droppedAt = Date.now();
      await sleep(25_000);
      await recorder.stop();
      const series = frameRateSeries(recorder.samples, 'guest');
      // Counted from 8 s after the drop: the first seconds still play what was queued before it.
      const back = secondsUntil(series, droppedAt + 8000, Date.now(), (fps) => fps >= 15);
      const rates = series.filter(([t]) => t > droppedAt).map(([, fps]) => fps.toFixed(0));
      assert.ok(Number.isFinite(back), `the guest's frame rate, second by second after the drop: ${rates.join(' ')}`);
    } finally {
      await call.close();
    }
  });

  // This failed 3 of 5 runs on 2026-12-07 (others' video at 0.6-5 fps), for two faults of the lab,
  // not of linkcall: the pages' own cameras stalled (linkcallGroupCall) and the server's packet
  // stamps came late (LAB_PRIORITY in netlab.ts). With both fixed it passed 4 of 4, against 1 of 3.
  test("with three people and the guest's downlink at 400 kbit/s, the guest sees both others move and the other two see each other sharp", async (t) => {
    await lab.clear();
    for (const p of ['host', 'guest', 'guest2']) await lab.impair(p, 'both', { delayMs: 20 });
    await lab.impair('guest', 'down', { rateKbps: 400, queueMs: 200 });
    const call = await linkcallGroupCall(lab, server, ['guest', 'guest2']);
    try {
      const recorder = new Recorder(call);
      recorder.start();
      await sleep(10_000);
      const from = Date.now();
      await sleep(12_000);
      await recorder.stop();
      const to = Date.now();
      const seen = Object.fromEntries(['host', 'guest', 'guest2'].map((p) => [p, perStream(recorder.samples, p, from, to)]));
      const said = JSON.stringify(seen);
      t.diagnostic(`per stream: ${said}`);
      // Frame rates are CPU-bound here (three browsers on two cores; in a full test run the host
      // once drew both others at 13-15 fps): the bounds ask only that video plays. Before the small
      // layers were thinned and halved for such a viewer, the guest got them at 5-18 fps (lab).
      assert.equal(seen.guest!.length, 2, `the guest's streams: ${said}`);
      for (const s of seen.guest!) assert.ok(s.fps > 8, `the guest gets ${s.from} at ${s.fps.toFixed(1)} fps: ${said}`);
      // Sharp: the largest picture the other sends (640x480 from its camera, unless its encoder is
      // short of CPU: in full test runs on a slow day all three sent at most 160x120 or 320x240).
      for (const [p, sender] of [['host', 'guest2'], ['guest2', 'host']] as const) {
        const other = seen[p]!.find((s) => s.from !== 'Guest');
        const sent = largestSent(recorder.samples, sender, from, to);
        assert.ok(other && other.resolution === sent && other.fps > 5, `${p} gets the other sharp person ${JSON.stringify(other)}, who sent ${sent}: ${said}`);
      }
    } finally {
      await call.close();
    }
  });
});
