/**
 * Signaling capacity of one node: how many idle WebSocket connections it holds,
 * what each costs in memory, and how fast a knock reaches the host under that load.
 *
 *   npx tsx bench/signaling.ts [connections=20000] [knocks=1000]
 *
 * Three kinds of process, all on loopback:
 *  - the server: the real app (buildApp, SQLite, SFU) in its own process, with the knock
 *    rate limits raised so the benchmark can knock 1000 times on one link;
 *  - load clients (2 processes): each opens its share of the connections, spread over the
 *    source addresses 127.0.0.2–127.0.0.9; a connection counts once its WebSocket handshake
 *    completed and a `ping` got its `pong` — like a guest whose join page is open (the app
 *    opens the socket during the camera preview), idle from then on, answering heartbeats;
 *  - this coordinator: measures the server's RSS (from /proc, after a GC) before and after,
 *    then holds a host in a call and times guest `join` sent → host receives `knock`, one
 *    knock after another (each declined), while the load stays connected.
 * Prints a summary and writes bench/results/signaling.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const SOURCE_ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);
const LOAD_PROCESSES = 2;
const HANDSHAKES_IN_FLIGHT = 256;


// ------------------------------------------------------------------ server process

async function runServer(): Promise<void> {
  const { buildApp } = await import('../src/server/app.js');
  const { loadConfig } = await import('../src/server/config.js');
  const { SqliteStore } = await import('../src/server/store/sqlite.js');
  const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-bench-'));
  const store = new SqliteStore(join(dataDir, 'linkcall.sqlite'));
  const app = await buildApp({
    config: loadConfig({ DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'warn' }),
    store,
    logger: { level: 'warn' },
    rateLimits: { knocksPerLinkPerMinute: 1_000_000, knocksPerAddressPerMinute: 1_000_000, wsConnectionsPerAddress: 1_000_000 },
  });
  await app.http.listen({ port: 0, host: '127.0.0.1' });
  const address = app.http.server.address() as { port: number };
  process.on('message', async (m: { cmd: string }) => {
    if (m.cmd === 'memory') {
      for (let i = 0; i < 3; i++) {
        (globalThis as { gc?: () => void }).gc?.();
        await new Promise((r) => setTimeout(r, 200));
      }
      process.send!({ memory: { ...process.memoryUsage(), rss: rssBytes(process.pid) } });
    } else if (m.cmd === 'stop') {
      await app.http.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    }
  });
  process.send!({ port: address.port });
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

// ------------------------------------------------------------------ load process

async function runLoad(wsUrl: string, count: number, offset: number): Promise<void> {
  const sockets: WebSocket[] = [];
  let failed = 0;
  let next = 0;
  const started = performance.now();
  const openOne = (i: number) =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(wsUrl, { localAddress: SOURCE_ADDRESSES[(offset + i) % SOURCE_ADDRESSES.length], perMessageDeflate: false });
      const fail = () => {
        failed++;
        resolve();
      };
      ws.once('error', fail);
      ws.once('unexpected-response', fail);
      ws.once('open', () => {
        ws.once('message', () => {
          ws.off('error', fail);
          ws.on('error', () => {});
          sockets.push(ws);
          resolve();
        });
        ws.send('{"type":"ping","seq":1}');
      });
    });
  const worker = async () => {
    while (next < count) await openOne(next++);
  };
  const progress = setInterval(() => process.send!({ progress: sockets.length, failed }), 1000);
  await Promise.all(Array.from({ length: HANDSHAKES_IN_FLIGHT }, worker));
  clearInterval(progress);
  let dropped = 0;
  for (const ws of sockets) ws.on('close', () => dropped++);
  process.send!({ opened: sockets.length, failed, ms: performance.now() - started });
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'status') process.send!({ open: sockets.filter((s) => s.readyState === WebSocket.OPEN).length, dropped });
    if (m.cmd === 'stop') {
      for (const ws of sockets) ws.terminate();
      process.exit(0);
    }
  });
}

// ------------------------------------------------------------------ coordinator

function request<T>(child: ChildProcess, cmd: string, key: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: Record<string, unknown>) => {
      if (key in m) {
        child.off('message', on);
        resolve(m as T);
      }
    };
    child.on('message', on);
    child.send({ cmd });
  });
}

function once<T>(child: ChildProcess, key: string, onOther?: (m: Record<string, unknown>) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: Record<string, unknown>) => {
      if (key in m) {
        child.off('message', on);
        resolve(m as T);
      } else onOther?.(m);
    };
    child.on('message', on);
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before "${key}"`)));
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const MiB = 1024 * 1024;

async function coordinate(requested: number, knocks: number): Promise<void> {
  // One process holds at most RLIMIT_NOFILE descriptors; the server needs ~100 of its own.
  const fdLimit = Number(readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)/)?.[1] ?? 1_048_576);
  const connections = Math.min(requested, fdLimit - 150);
  const self = new URL(import.meta.url).pathname;
  const loadBefore = loadavg();

  const server = fork(self, ['--server'], { execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await once<{ port: number }>(server, 'port');
  const url = `http://127.0.0.1:${port}`;
  const wsUrl = `ws://127.0.0.1:${port}/ws`;

  // A host with a link, and a few connections through the whole path, before the baseline.
  const signup = await fetch(`${url}/api/signup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'bench-host', password: 'correct horse battery' }),
  });
  const cookie = (signup.headers.get('set-cookie') ?? '').split(';')[0]!;
  const link = (await (await fetch(`${url}/api/links`, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: '{}' })).json()) as { id: string };
  await knockSeries(wsUrl, cookie, link.id, 20, 0);

  const before = (await request<{ memory: NodeJS.MemoryUsage }>(server, 'memory', 'memory')).memory;
  console.log(`server up on :${port}, RSS ${round(before.rss / MiB)} MiB; opening ${connections} connections…`);

  const share = Math.ceil(connections / LOAD_PROCESSES);
  const loads = Array.from({ length: LOAD_PROCESSES }, (_, i) =>
    fork(self, ['--load', wsUrl, String(Math.min(share, connections - i * share)), String(i)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const progress = new Array<number>(LOAD_PROCESSES).fill(0);
  const ticker = setInterval(() => process.stdout.write(`\r  ${progress.reduce((a, b) => a + b, 0)} connected`), 1000);
  const opened = await Promise.all(
    loads.map((l, i) => once<{ opened: number; failed: number; ms: number }>(l, 'opened', (m) => (progress[i] = Number(m.progress ?? 0)))),
  );
  clearInterval(ticker);
  const held = opened.reduce((a, o) => a + o.opened, 0);
  const failed = opened.reduce((a, o) => a + o.failed, 0);
  const rampMs = Math.max(...opened.map((o) => o.ms));
  console.log(`\r  ${held} connected, ${failed} failed, in ${round(rampMs / 1000, 1)} s`);

  await new Promise((r) => setTimeout(r, 3000));
  const loaded = (await request<{ memory: NodeJS.MemoryUsage }>(server, 'memory', 'memory')).memory;

  console.log(`timing ${knocks} knocks under load…`);
  const latencies = await knockSeries(wsUrl, cookie, link.id, knocks, 20);
  const after = (await request<{ memory: NodeJS.MemoryUsage }>(server, 'memory', 'memory')).memory;
  const statuses = await Promise.all(loads.map((l) => request<{ open: number; dropped: number }>(l, 'status', 'open')));
  const stillOpen = statuses.reduce((a, s) => a + s.open, 0);

  for (const l of loads) l.send({ cmd: 'stop' });
  server.send({ cmd: 'stop' });
  await Promise.all([server, ...loads].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));

  const sorted = [...latencies].sort((a, b) => a - b);
  const perConnection = (loaded.rss - before.rss) / Math.max(held, 1);
  const result = {
    what:
      'Idle signaling WebSockets held by one server process (handshake done, one ping answered, then idle with 15 s heartbeats), ' +
      'their memory (server RSS after GC, before vs after), and guest join → host knock latency under that load (sequential knocks, each declined).',
    connections: { requested, attempted: connections, held, failed, stillOpenAfterKnocks: stillOpen, rampSeconds: round(rampMs / 1000, 1) },
    memory: {
      rssBeforeMiB: round(before.rss / MiB),
      rssLoadedMiB: round(loaded.rss / MiB),
      rssAfterKnocksMiB: round(after.rss / MiB),
      rssPerConnectionKiB: round(perConnection / 1024),
      heapUsedPerConnectionKiB: round((loaded.heapUsed - before.heapUsed) / held / 1024),
      externalPerConnectionKiB: round((loaded.external - before.external) / held / 1024),
      projectedRssFor20kMiB: round((before.rss + perConnection * 20_000) / MiB),
    },
    knockMs: {
      knocks: sorted.length,
      p50: round(percentile(sorted, 50)),
      p95: round(percentile(sorted, 95)),
      p99: round(percentile(sorted, 99)),
      max: round(sorted.at(-1) ?? 0),
    },
    goals: {
      connections: { goal: 20_000, met: held >= 20_000 },
      rssFor20kMiB: { goal: 1024, met: before.rss + perConnection * 20_000 < 1024 * MiB },
      knockP99Ms: { goal: 100, met: percentile(sorted, 99) < 100 },
    },
    machine: { cpus: cpus().length, loadAverageBefore: loadBefore.map((x) => round(x)), loadAverageAfter: loadavg().map((x) => round(x)), fdLimitPerProcess: fdLimit, node: process.version },
    date: new Date().toISOString(),
  };
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL('./results/signaling.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
  console.log(
    [
      `connections held: ${held}/${connections}${connections < requested ? ` (asked ${requested}; this machine allows ${fdLimit} descriptors per process)` : ''}, failed ${failed}, still open after knocks ${stillOpen}`,
      `server RSS: ${result.memory.rssBeforeMiB} MiB → ${result.memory.rssLoadedMiB} MiB = ${result.memory.rssPerConnectionKiB} KiB per connection (heap ${result.memory.heapUsedPerConnectionKiB} KiB); 20 000 → ~${result.memory.projectedRssFor20kMiB} MiB (goal < 1024)`,
      `knock → host notified over ${sorted.length} knocks: p50 ${result.knockMs.p50} ms, p95 ${result.knockMs.p95} ms, p99 ${result.knockMs.p99} ms, max ${result.knockMs.max} ms (goal p99 < 100)`,
      `load average ${result.machine.loadAverageBefore.join(' ')} → ${result.machine.loadAverageAfter.join(' ')} on ${result.machine.cpus} cores`,
      'written to bench/results/signaling.json',
    ].join('\n'),
  );
}

/** A host in the call; `count` guests knock one after another, each declined. Returns join → knock times (ms). */
async function knockSeries(wsUrl: string, cookie: string, linkId: string, count: number, gapMs: number): Promise<number[]> {
  const open = (headers: Record<string, string> = {}) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { headers, perMessageDeflate: false });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  const card = 'A'.repeat(400);
  const host = await open({ cookie });
  const hostMessages: ((m: { type: string; knock?: { id: string } }) => void)[] = [];
  host.on('message', (d) => {
    const m = JSON.parse(String(d)) as { type: string; knock?: { id: string } };
    for (const h of [...hostMessages]) h(m);
  });
  const joined = new Promise<void>((resolve) => hostMessages.push((m) => m.type === 'joined' && resolve()));
  host.send(JSON.stringify({ type: 'join', linkId, card }));
  await joined;

  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const guest = await open();
    const closed = new Promise((resolve) => guest.once('close', resolve));
    let sentAt = 0;
    const knocked = new Promise<string>((resolve) => {
      const h = (m: { type: string; knock?: { id: string } }) => {
        if (m.type !== 'knock') return;
        latencies.push(performance.now() - sentAt);
        hostMessages.splice(hostMessages.indexOf(h), 1);
        resolve(m.knock!.id);
      };
      hostMessages.push(h);
    });
    sentAt = performance.now();
    guest.send(JSON.stringify({ type: 'join', linkId, card }));
    const id = await knocked;
    host.send(JSON.stringify({ type: 'decline', participantId: id }));
    await closed;
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
  }
  host.send(JSON.stringify({ type: 'end' }));
  host.close();
  return latencies;
}

// Children exit with the coordinator, however it ends.
process.on('disconnect', () => process.exit(0));
const role = process.argv[2];
if (role === '--server') await runServer();
else if (role === '--load') await runLoad(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]));
else await coordinate(Number(process.argv[2] ?? 20_000), Number(process.argv[3] ?? 1000));
