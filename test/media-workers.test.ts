// MEDIA_WORKERS: each call's SFU runs in one of N child processes, pinned there. A real server on
// loopback with 2 workers; in each call two bots (src/bot: real node-datachannel peers that
// encrypt, send and authenticate frames) talk through the worker their call is pinned to.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Bot } from '../src/bot/bot.js';
import { loadFixtures } from '../src/bot/fixtures.js';
import { ERRORS, LinkcallError } from '../src/protocol/errors.js';
import { shutdownMediaEngine } from '../src/server/media/router.js';
import type { WorkerRoomMedia } from '../src/server/sfu/worker-room-media.js';
import { mediaWorkersOf } from './support/media-workers.js';
import { parsePrometheus } from './support/prometheus.js';
import { createLink, signUp, startServer, type TestLink, type TestServer } from './support/server.js';
import { freePort } from './support/services.js';
import { sleep, waitFor } from './support/wait.js';



function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface BotCall {
  link: TestLink;
  host: Bot;
  guest: Bot;
  media: WorkerRoomMedia;
}

describe('media workers: calls pinned to worker processes', { timeout: 240_000 }, () => {
  let server: TestServer | undefined;
  let cookie: string;
  const bots: Bot[] = [];
  /** Every worker process seen, to check none is left at the end. */
  const workerPids = new Set<number>();

  before(async () => {
    loadFixtures();
    server = await startServer({ env: { MEDIA_WORKERS: '2' } });
    cookie = await signUp(server, 'workerhost');
  });
  after(async () => {
    await Promise.all(bots.map((b) => b.leave()));
    await sleep(200);
    await server?.close();
    for (const pid of workerPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    // The bots' peer connections live in this process.
    shutdownMediaEngine();
  });

  const workers = () => server!.app.mediaWorkers!.workers();
  const noteWorkers = () => workers().forEach((w) => w.pid !== undefined && workerPids.add(w.pid));

  /** A call of two bots: the host (signed in, lets everyone in) and a guest; resolves once media flows both ways. */
  async function callOfTwoBots(name: string): Promise<BotCall> {
    const link = await createLink(server!, cookie, name);
    const host = await Bot.join({ link: link.url, name: 'Host bot', cookie, hostKey: link.hostKey, admitAll: true, bindAddress: '127.0.0.1' });
    bots.push(host);
    await host.inCall(20_000);
    // The guest sends three simulcast layers: the worker's SFU tells it which ones are watched.
    const guest = await Bot.join({ link: link.url, name: 'Guest bot', bindAddress: '127.0.0.1', layers: ['q', 'h', 'f'] });
    bots.push(guest);
    await guest.inCall(20_000);
    const media = server!.app.rooms.get(link.id)!.media as WorkerRoomMedia;
    noteWorkers();
    return { link, host, guest, media };
  }

  /** Each bot of the call authenticates ≥ 20 video and ≥ 35 audio frames/s of the other, over 3 s. */
  async function assertFlowing({ host, guest }: BotCall, label: string): Promise<void> {
    const pair: [Bot, Bot][] = [[host, guest], [guest, host]];
    const frames = (to: Bot, from: Bot, kind: 'audio' | 'video') =>
      to.stats().received.find((s) => s.peerId === from.id && s.kind === kind)?.authenticatedFrames ?? 0;
    await waitFor(`${label}: media both ways`, () => pair.every(([to, from]) => frames(to, from, 'video') > 30 && frames(to, from, 'audio') > 50));
    const before = pair.map(([to, from]) => [frames(to, from, 'video'), frames(to, from, 'audio')] as const);
    const t0 = performance.now();
    await sleep(3000);
    const seconds = (performance.now() - t0) / 1000;
    pair.forEach(([to, from], i) => {
      const video = (frames(to, from, 'video') - before[i]![0]) / seconds;
      const audio = (frames(to, from, 'audio') - before[i]![1]) / seconds;
      assert.ok(video >= 20, `${label}: ${video.toFixed(1)} authenticated video frames/s`);
      assert.ok(audio >= 35, `${label}: ${audio.toFixed(1)} authenticated audio frames/s`);
    });
  }

  /** /metrics, parsed strictly: a sample's value by name and labels. */
  async function metrics(): Promise<(name: string, labels?: Record<string, string>) => number | undefined> {
    const samples = parsePrometheus(await (await fetch(`${server!.url}/metrics`)).text());
    return (name, labels = {}) => samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
  }

  let first: BotCall;
  let second: BotCall;

  it('a refusal in a worker comes back as the same error code', async () => {
    const media = server!.app.mediaWorkers!.createRoomMedia();
    const code = (expected: string) => (err: unknown) => err instanceof LinkcallError && err.code === expected;
    await assert.rejects(media.publish('nobody', 'v=0\r\n'), code('not_in_call'), 'publishing without transports');
    media.admit('somebody', () => {});
    await assert.rejects(media.publish('somebody', 'not an offer'), code('media_failed'), 'an offer the engine cannot read');
    media.close();
    await assert.rejects(media.publish('somebody', 'v=0\r\n'), code('not_in_call'), 'a closed call');
  });

  it('two calls land on different worker processes, and in each two bots exchange authenticated frames', async () => {
    first = await callOfTwoBots('First call');
    second = await callOfTwoBots('Second call');
    const pids = [first.media.pid, second.media.pid];
    assert.ok(pids.every((pid) => pid !== undefined && pid !== process.pid), `worker pids ${pids.join(', ')}`);
    assert.notEqual(pids[0], pids[1], 'the second call went to the idle worker');
    assert.deepEqual(mediaWorkersOf(process.pid).sort(), workers().map((w) => w.pid).sort(), 'the workers are child processes of the server');
    await Promise.all([assertFlowing(first, 'first call'), assertFlowing(second, 'second call')]);
    // The host bot shows the guest at 320×180: the SFU in the worker asks the guest, through the
    // server, to send its smallest layer only — and the video keeps flowing.
    await waitFor('the guest asked to send its small layer only', () => first.guest.stats().sent.layers.join() === 'q', 15_000);
    await assertFlowing(first, 'first call, one layer');

    // /metrics adds up the media counted in the workers.
    const m = await metrics();
    assert.ok((m('linkcall_rtp_forwarded_packets_total') ?? 0) > 1000, 'forwarded packets are counted');
    assert.equal(m('linkcall_media_worker_calls', { worker: '0' }), 1);
    assert.equal(m('linkcall_media_worker_calls', { worker: '1' }), 1);
  });

  it('a worker killed with SIGKILL ends its call with a sentence, the other call goes on, and a new worker takes new calls', async () => {
    const deadPid = first.media.pid!;
    const deadIndex = workers().find((w) => w.pid === deadPid)!.index;
    process.kill(deadPid, 'SIGKILL');

    for (const bot of [first.host, first.guest]) {
      await waitFor('the call on the dead worker to end', () => bot.call.phase.kind === 'ended', 10_000);
      assert.deepEqual(bot.call.phase, { kind: 'ended', code: 'media_failed', message: ERRORS.media_failed.message });
    }
    assert.match(ERRORS.media_failed.message, /Join again from the link/);
    assert.equal(server!.app.rooms.get(first.link.id), undefined, 'the room is gone');

    // The dead worker is replaced by a new process; meanwhile the call on the other worker goes on.
    const videoFrames = () => second.guest.stats().received.find((s) => s.peerId === second.host.id && s.kind === 'video')!.authenticatedFrames;
    const framesAtKill = videoFrames();
    await waitFor('a new worker', () => { const w = workers()[deadIndex]!; return w.ready && w.pid !== deadPid; }, 30_000);
    noteWorkers();
    assert.ok(videoFrames() > framesAtKill, 'the other call kept flowing while the worker was replaced');
    assert.equal(second.host.call.phase.kind, 'in-call');
    await assertFlowing(second, 'the other call after the kill');

    // The new worker takes the next call (it has the fewest participants).
    const third = await callOfTwoBots('Third call');
    assert.equal(third.media.pid, workers()[deadIndex]!.pid);
    assert.notEqual(third.media.pid, deadPid);
    await assertFlowing(third, 'a call on the new worker');

    const m = await metrics();
    assert.equal(m('linkcall_media_worker_restarts_total'), 1);
    assert.equal(m('linkcall_participants_ended_total', { reason: 'media_failed' }), 2);
  });

  it('closing the server stops every worker process', async () => {
    noteWorkers();
    assert.ok(workerPids.size >= 3, `${workerPids.size} workers seen`);
    await server!.close();
    server = undefined;
    assert.deepEqual([...workerPids].filter(alive), [], 'no worker process is left');
    assert.deepEqual(mediaWorkersOf(process.pid), [], 'no worker process is left');
  });
});

describe('media workers of a server that is killed', { timeout: 60_000 }, () => {
  it('exit on their own (no orphans)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-workers-'));
    const port = await freePort();
    const root = new URL('..', import.meta.url).pathname;
    const server = spawn(process.execPath, ['--import', 'tsx', 'src/server/main.ts'], {
      cwd: root,
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', MEDIA_WORKERS: '2' },
      stdio: 'ignore',
    });
    try {
      // Both workers running: each reported its memory (they report once ready).
      const running = async () => {
        const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
        const samples = text ? parsePrometheus(text) : [];
        return samples.filter((s) => s.name === 'linkcall_media_worker_resident_memory_bytes' && s.value > 0).length === 2;
      };
      for (let i = 0; !(await running()); i++) {
        if (i > 300) throw new Error('the server and its workers did not start');
        await sleep(100);
      }
      const workerPids = mediaWorkersOf(server.pid!);
      assert.equal(workerPids.length, 2);
      server.kill('SIGKILL');
      await waitFor('the orphaned workers to exit', () => !workerPids.some(alive), 10_000);
    } finally {
      if (server.exitCode === null) server.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
