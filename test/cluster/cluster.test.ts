/**
 * Three linkcall nodes with Redis and PostgreSQL, real Chromium pages: any node takes
 * any client, a call lives on one node, and (fault test) survives the loss of that node.
 * Node c has the most capacity, so calls are placed there; the pages are on a and b,
 * so both pages' signaling is relayed to c and their media goes to c's SFU.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, newPerson, waitForPlayingVideo } from '../support/browser.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { guestKnocks, hostEnters, signUpAndCreateLink, text } from '../support/flow.js';
import { metricValue, scrape } from '../support/prometheus.js';

/** Resolves once the <video> decodes new frames (counted over half a second). */
async function waitForNewFrames(page: Page, selector: string, timeout: number): Promise<void> {
  await page.waitForFunction(
    async (sel) => {
      const v = document.querySelector<HTMLVideoElement>(sel);
      if (!v || v.videoWidth === 0) return false;
      const f0 = v.getVideoPlaybackQuality().totalVideoFrames;
      await new Promise((r) => setTimeout(r, 500));
      return v.isConnected && v.getVideoPlaybackQuality().totalVideoFrames > f0 + 2;
    },
    selector,
    { timeout, polling: 100 },
  );
}

describe('a cluster of three nodes', { timeout: 240_000 }, () => {
  let cluster: TestCluster;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;
  let browser: Browser;
  const node = (id: string) => cluster.nodes.find((n) => n.id === id)!;

  before(async () => {
    cluster = await startCluster({ nodes: [{ id: 'a' }, { id: 'b' }, { id: 'c', capacity: 100 }] });
    chromium = await launchChromium();
    browser = chromium.browser;
  });
  after(async () => {
    await chromium?.close();
    await cluster?.close();
  });

  let host: { page: Page };
  let guest: { page: Page };

  it('host on node a, guest on node b, same link: approved, video both ways, the call on one node', async () => {
    const a = node('a');
    const b = node('b');
    host = await newPerson(browser, a.url);
    guest = await newPerson(browser, b.url);
    const link = await signUpAndCreateLink(host.page, 'wanda', 'Across nodes');
    assert.ok(link.startsWith(a.url));
    const sameLinkOnB = link.replace(a.url, b.url);

    await hostEnters(host.page, link);
    await guestKnocks(guest.page, sameLinkOnB, 'Xavi');
    await text(guest.page, 'Waiting for wanda to let you in…');
    await host.page.getByRole('button', { name: 'Approve Xavi' }).click();
    await waitForPlayingVideo(host.page, 'video[aria-label="Video of Xavi"]', 30_000);
    await waitForPlayingVideo(guest.page, 'video[aria-label="Video of wanda"]', 30_000);

    // Counters are read a moment after the first frames: give forwarding a few seconds to add up.
    let metrics: Record<string, Awaited<ReturnType<typeof scrape>>> = {};
    for (let tries = 0; tries < 20; tries++) {
      metrics = Object.fromEntries(await Promise.all(cluster.nodes.map(async (n) => [n.id, await scrape(n.url)] as const)));
      if ((metricValue(metrics.c ?? [], 'linkcall_rtp_forwarded_packets_total') ?? 0) > 100) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual(
      cluster.nodes.map((n) => metricValue(metrics[n.id]!, 'linkcall_calls')),
      [0, 0, 1],
      'the call lives on c only (placed by capacity)',
    );
    assert.equal(metricValue(metrics.c!, 'linkcall_participants'), 2);
    assert.equal(metricValue(metrics.c!, 'linkcall_knocks_total'), 1);
    const media = metrics.c!.filter((m) => m.name.startsWith('linkcall_rtp')).map((m) => `${m.name}=${m.value}`).join(' ');
    assert.ok(metricValue(metrics.c!, 'linkcall_rtp_forwarded_packets_total')! > 100, `c forwards the media: ${media}`);
    assert.ok(metricValue(metrics.c!, 'linkcall_rtp_forwarded_bytes_total')! > 10_000);
    for (const id of ['a', 'b']) assert.equal(metricValue(metrics[id]!, 'linkcall_rtp_forwarded_packets_total'), 0, `${id} forwards no media`);
    const nodes = (await (await fetch(`${a.url}/readyz`)).json()) as { ready: boolean; cluster: boolean };
    assert.deepEqual([nodes.ready, nodes.cluster], [true, true]);
  });

  it('the node hosting a call is killed: within 10 s both have video again through another node, without knocking again', async () => {
    assert.ok(host && guest, 'runs after the call above');
    const c = node('c');
    const killedAt = Date.now();
    c.kill();
    // A live node takes the call over once c is seen dead (its heartbeat key expires within 3 s):
    // wait for that first, so the frames counted below come through the new node.
    const liveCalls = async () =>
      (await Promise.all(['a', 'b'].map(async (id) => metricValue(await scrape(node(id).url), 'linkcall_calls') ?? 0))).reduce((x, y) => x + y, 0);
    while ((await liveCalls()) === 0 && Date.now() - killedAt < 10_000) await new Promise((r) => setTimeout(r, 100));
    const left = () => Math.max(1, 10_000 - (Date.now() - killedAt));
    await Promise.all([
      waitForNewFrames(host.page, 'video[aria-label="Video of Xavi"]', left()),
      waitForNewFrames(guest.page, 'video[aria-label="Video of wanda"]', left()),
    ]);
    const recoveredMs = Date.now() - killedAt;
    assert.ok(recoveredMs <= 10_000, `video again after ${recoveredMs} ms`);
    assert.equal(await guest.page.getByText('Waiting for wanda to let you in…').count(), 0, 'the guest did not knock again');
    assert.equal(await liveCalls(), 1, 'the call lives on one live node');
  });
});
