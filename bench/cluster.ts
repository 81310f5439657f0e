/**
 * The same bot load on a cluster of 1 and of 3 nodes (real PostgreSQL, Redis, one process
 * per node): CALLS calls of BOTS_PER_CALL bots each (a host bot that admits everyone, the
 * rest knock), bots spread over the nodes round-robin as a load balancer would.
 *  - join: a guest bot opens its WebSocket and knocks → admitted with a verified key grant (ms)
 *  - CPU per node: process CPU over a steady window with everyone sending, as a share of one core
 * Prints a table and writes bench/results/cluster.json.
 * Usage: npx tsx bench/cluster.ts [calls=4] [botsPerCall=4] [steadySeconds=15]
 * On this 2-core machine the nodes share the same two cores: more nodes spread calls (and
 * their SFU work) over processes, not over more hardware.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Bot } from '../src/bot/bot.js';
import { loadFixtures } from '../src/bot/fixtures.js';
import { startCluster, type TestCluster } from '../test/support/cluster.js';
import { metricValue, scrape } from '../test/support/prometheus.js';
import { createLink, signUp, type TestServer } from '../test/support/server.js';

const calls = Number(process.argv[2] ?? 4);
const botsPerCall = Number(process.argv[3] ?? 4);
const steadySeconds = Number(process.argv[4] ?? 15);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

interface RunResult {
  nodes: number;
  bots: number;
  joinMs: { p50: number; p95: number; max: number };
  /** Per node: calls placed there, process CPU as a share of one core, forwarded packets/s. */
  perNode: { id: string; calls: number; cpu: number; forwardedPerSecond: number }[];
  totalCpu: number;
  framesReceivedPerBotPerSecond: number;
}

async function run(nodeCount: number): Promise<RunResult> {
  const ids = ['a', 'b', 'c', 'd', 'e'].slice(0, nodeCount);
  const cluster: TestCluster = await startCluster({ nodes: ids.map((id) => ({ id })) });
  const bots: Bot[] = [];
  try {
    const fixtures = loadFixtures();
    const first = { url: cluster.nodes[0]!.url } as TestServer;
    const cookie = await signUp(first, 'benchhost');
    const joinTimes: number[] = [];
    let next = 0;
    const nodeUrl = () => cluster.nodes[next++ % cluster.nodes.length]!.url;
    for (let c = 0; c < calls; c++) {
      const link = await createLink(first, cookie, `Bench ${c}`);
      const path = link.url.slice(first.url.length);
      const host = await Bot.join({ link: nodeUrl() + path, name: `Host ${c}`, cookie, hostKey: link.hostKey, admitAll: true, layers: ['q'], fixtures, linkKeys: link.keys, bindAddress: '127.0.0.1' });
      bots.push(host);
      await host.inCall();
      for (let g = 1; g < botsPerCall; g++) {
        const started = performance.now();
        const guest = await Bot.join({ link: nodeUrl() + path, name: `Guest ${c}.${g}`, layers: ['q'], fixtures, linkKeys: link.keys, bindAddress: '127.0.0.1' });
        bots.push(guest);
        await guest.inCall();
        joinTimes.push(performance.now() - started);
      }
    }
    // Let media settle, then measure a steady window.
    await new Promise((r) => setTimeout(r, 3000));
    const before = await Promise.all(cluster.nodes.map((n) => scrape(n.url)));
    const framesBefore = bots.reduce((s, b) => s + b.stats().received.reduce((x, r) => x + r.authenticatedFrames, 0), 0);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, steadySeconds * 1000));
    const after = await Promise.all(cluster.nodes.map((n) => scrape(n.url)));
    const seconds = (performance.now() - t0) / 1000;
    const framesAfter = bots.reduce((s, b) => s + b.stats().received.reduce((x, r) => x + r.authenticatedFrames, 0), 0);
    const perNode = cluster.nodes.map((n, i) => {
      const delta = (name: string) => (metricValue(after[i]!, name) ?? 0) - (metricValue(before[i]!, name) ?? 0);
      return {
        id: n.id,
        calls: metricValue(after[i]!, 'linkcall_calls') ?? 0,
        cpu: Math.round((delta('process_cpu_seconds_total') / seconds) * 1000) / 1000,
        forwardedPerSecond: Math.round(delta('linkcall_rtp_forwarded_packets_total') / seconds),
      };
    });
    return {
      nodes: nodeCount,
      bots: bots.length,
      joinMs: { p50: Math.round(percentile(joinTimes, 50)), p95: Math.round(percentile(joinTimes, 95)), max: Math.round(Math.max(...joinTimes)) },
      perNode,
      totalCpu: Math.round(perNode.reduce((s, n) => s + n.cpu, 0) * 1000) / 1000,
      framesReceivedPerBotPerSecond: Math.round(((framesAfter - framesBefore) / bots.length / seconds) * 10) / 10,
    };
  } finally {
    await Promise.all(bots.map((b) => b.leave().catch(() => b.close())));
    await cluster.close();
  }
}

const results: RunResult[] = [];
for (const n of [1, 3]) {
  const r = await run(n);
  results.push(r);
  console.log(
    `${n} node(s), ${r.bots} bots: join p50 ${r.joinMs.p50} ms, p95 ${r.joinMs.p95} ms; CPU ` +
      r.perNode.map((x) => `${x.id} ${(x.cpu * 100).toFixed(0)}% (${x.calls} calls, ${x.forwardedPerSecond} pkt/s)`).join(', ') +
      `; total ${(r.totalCpu * 100).toFixed(0)}%; ${r.framesReceivedPerBotPerSecond} frames/s received per bot`,
  );
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/cluster.json', import.meta.url),
  JSON.stringify(
    {
      what: 'same bot load on 1 and 3 linkcall nodes (PostgreSQL + Redis, one process per node, loopback, 2-core machine shared by all nodes): join = a guest bot opens its WebSocket and knocks → admitted with a verified key grant (the host bot admits at once); cpu = process CPU share of one core over the steady window',
      calls,
      botsPerCall,
      steadySeconds,
      layers: ['q'],
      runs: results,
    },
    null,
    2,
  ) + '\n',
);
process.exit(0);
