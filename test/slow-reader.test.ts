// A participant whose signaling connection stops reading (a frozen tab, a stalled network) is cut
// within the documented bound (docs/PROTOCOL.md: a full 1 MiB send queue, or its missed pong at
// most 30 s after it stopped), and nobody else waits for it: the others' video keeps playing and
// the host still sees knocks at once. Real server, bots with media, Node clients on the browser's
// protocol library; the slow one's TCP socket is simply paused.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Bot } from '../src/bot/bot.js';
import { loadFixtures } from '../src/bot/fixtures.js';
import { shutdownMediaEngine } from '../src/server/media/router.js';
import { connectClient, createLink, signUp, startServer, until, type TestLink, type TestServer } from './support/server.js';
import { sleep, waitFor } from './support/wait.js';

/** The documented bound: two heartbeats of 15 s, plus scheduling slack. */
const CUT_WITHIN_MS = 30_000 + 5_000;

describe('a participant whose connection stops reading', { timeout: 180_000 }, () => {
  let server: TestServer;
  let link: TestLink;
  let host: Awaited<ReturnType<typeof connectClient>>;
  const bots: Bot[] = [];

  before(async () => {
    loadFixtures();
    server = await startServer();
    const cookie = await signUp(server, 'slowhost');
    link = await createLink(server, cookie, 'Slow reader');
    host = await connectClient(server, link, cookie);
    await host.call.join('Hana');
    await until(host.call, () => host.call.phase.kind === 'in-call' && host.call.keys !== undefined);
  });
  after(async () => {
    await Promise.all(bots.map((b) => b.leave()));
    host?.call.leave();
    await sleep(200);
    host?.signaling.close();
    await server?.close();
    shutdownMediaEngine();
  });

  it('is cut within the bound, counted, and comes back when it reads again; meanwhile video plays and knocks arrive at once', async (t) => {
    bots.push(...(await Promise.all(['Bot Ada', 'Bot Bea'].map((name) => Bot.join({ link: link.url, name, bindAddress: '127.0.0.1', layers: ['h'] })))));
    await until(host.call, () => host.call.knocks.size === 2, 15_000);
    for (const k of [...host.call.knocks.values()]) await host.call.approve(k.id);
    await Promise.all(bots.map((b) => b.inCall(20_000)));

    const slow = await connectClient(server, link);
    await slow.call.join('Sol');
    await until(host.call, () => host.call.knocks.size === 1, 10_000);
    await host.call.approve([...host.call.knocks.keys()][0]!);
    await until(slow.call, () => slow.call.phase.kind === 'in-call' && slow.call.safetyCode === host.call.safetyCode, 15_000);
    const slowId = slow.call.you!.id;
    await waitFor('video between the bots', () => bots.every((b) => b.stats().received.filter((s) => s.kind === 'video' && s.authenticatedFrames > 30).length === 1), 20_000);

    // Sol's tab freezes: its socket stops reading.
    const tcp = (slow.raw() as unknown as { _socket: Socket })._socket;
    tcp.pause();
    const stoppedAt = performance.now();

    // The others' call goes on: each bot keeps receiving the other's video.
    const count = () => bots.map((b) => b.stats().received.find((s) => s.kind === 'video')?.authenticatedFrames ?? 0);
    const before = count();
    const t0 = performance.now();
    await sleep(4000);
    const seconds = (performance.now() - t0) / 1000;
    count().forEach((n, i) => assert.ok((n - before[i]!) / seconds >= 15, `a bot receives ${((n - before[i]!) / seconds).toFixed(1)} video frames/s while Sol does not read`));

    // Knocks still reach the host at once.
    const knockMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const guest = await connectClient(server, link);
      const sent = performance.now();
      await guest.call.join(`Knocker ${i}`);
      await until(host.call, () => [...host.call.knocks.values()].some((k) => k.name === `Knocker ${i}`), 5_000);
      knockMs.push(performance.now() - sent);
      for (const id of host.call.knocks.keys()) host.call.decline(id);
      guest.signaling.close();
    }
    knockMs.sort((a, b) => a - b);
    assert.ok(knockMs[2]! < 100, `knocks reach the host in ${knockMs.map(Math.round).join(', ')} ms while Sol does not read`);

    // The server cuts Sol within the bound: the others see Sol reconnecting, and /metrics counts it.
    await until(host.call, () => host.call.participants.get(slowId)?.reconnecting === true, CUT_WITHIN_MS);
    const cutAfter = performance.now() - stoppedAt;
    assert.ok(cutAfter <= CUT_WITHIN_MS, `cut after ${Math.round(cutAfter)} ms`);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^linkcall_ws_too_slow_total 1$/m);
    t.diagnostic(`cut ${Math.round(cutAfter)} ms after it stopped reading; knocks meanwhile ${knockMs.map(Math.round).join(', ')} ms`);

    // Sol's tab wakes up: the lost connection is noticed and resumed as the same participant.
    tcp.resume();
    await until(host.call, () => host.call.participants.get(slowId)?.reconnecting === false, 20_000);
    assert.equal(slow.call.you?.id, slowId);
    slow.call.leave();
    await sleep(100);
    slow.signaling.close();
  });
});
