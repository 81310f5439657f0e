/**
 * The real server as a child process (`node --import tsx src/server/main.ts`):
 * killed with SIGKILL mid-call it loses no account, session or link, and the
 * same link works after a restart; on SIGTERM it tells everyone, refuses new
 * knocks with a sentence, lets the call go on for the grace time and exits 0.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type WebSocket from 'ws';
import { closeCodeFor, ERRORS } from '../src/protocol/errors.js';
import { callOfTwo, connectClient, createLink, signUp, type TestServer } from './support/server.js';
import { freePort } from './support/services.js';

const ROOT = new URL('..', import.meta.url).pathname;
const GRACE_MS = 3000;

interface Child {
  process: ChildProcess;
  server: TestServer;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

async function startChild(dataDir: string, port: number): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', SHUTDOWN_GRACE_MS: String(GRACE_MS) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000; // generous: tsx compiles the server on a busy machine
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited at start: ${stderr.slice(-500)}`);
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`server did not start: ${stderr.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The helpers need only the addresses.
  const server = { url, wsUrl: `ws://127.0.0.1:${port}/ws` } as TestServer;
  return { process: child, server, exited };
}

const closedSocket = (ws: WebSocket) =>
  new Promise<number>((resolve) => (ws.readyState === ws.CLOSED ? resolve(-1) : ws.once('close', (code) => resolve(code))));

describe('a server process that is killed or stopped', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-restart-'));
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('SIGKILL mid-call loses no account, session or link; the same link works after a restart; SIGTERM drains and exits 0', async () => {
    const port = await freePort();
    let child = await startChild(dataDir, port);
    children.push(child.process);
    const cookie = await signUp(child.server, 'ana');
    const link = await createLink(child.server, cookie, 'Standup');
    const first = await callOfTwo(child.server, link, cookie);
    // Written a moment before the kill: must survive too.
    const lateLink = await createLink(child.server, cookie, 'Written just before the crash');

    const sockets = [first.host.raw(), first.guest.raw()];
    child.process.kill('SIGKILL');
    assert.equal((await child.exited).signal, 'SIGKILL');
    for (const ws of sockets) await closedSocket(ws);
    first.host.signaling.close();
    first.guest.signaling.close();

    child = await startChild(dataDir, port);
    children.push(child.process);
    const me = await fetch(`${child.server.url}/api/me`, { headers: { cookie } });
    assert.equal(me.status, 200, 'the session cookie still works');
    assert.deepEqual(await me.json(), { username: 'ana' });
    const links = (await (await fetch(`${child.server.url}/api/links`, { headers: { cookie } })).json()) as { links: { id: string; name: string }[] };
    assert.deepEqual(links.links.map((l) => l.id).sort(), [link.id, lateLink.id].sort(), 'links intact');
    const info = (await (await fetch(`${child.server.url}/api/links/${link.id}/info`)).json()) as { name: string; infoMac: string | null };
    assert.equal(info.name, 'Standup');
    assert.ok(info.infoMac, 'the verified link facts survived');
    const health = (await (await fetch(`${child.server.url}/healthz`)).json()) as { rooms: number };
    assert.equal(health.rooms, 0, 'the open call ended with the process');

    // The same link works: knock → approve.
    const { host, guest } = await callOfTwo(child.server, link, cookie);

    // ------------------------------------------------ SIGTERM with a call going on
    const idle = await connectClient(child.server, link); // a guest on the join page, not yet knocking
    const notices = [host, guest, idle].map((c) => c.signaling.next('shutdown'));
    const ended = [host, guest].map((c) => c.signaling.next('closed', GRACE_MS + 5000));
    const closeCodes = [host.raw(), guest.raw()].map(closedSocket);
    const sigterm = Date.now();
    child.process.kill('SIGTERM');
    for (const notice of await Promise.all(notices)) {
      assert.deepEqual(notice, { type: 'shutdown', message: ERRORS.server_shutdown.message, graceMs: GRACE_MS });
    }
    // The people in the call are shown the sentence while the call goes on.
    for (const c of [host, guest]) assert.equal(c.call.serverNotice, ERRORS.server_shutdown.message);

    // New knocks are refused with a sentence.
    const late = await connectClient(child.server, link);
    const refused = late.signaling.next('closed');
    const lateCode = closedSocket(late.raw());
    await late.call.join('Carol');
    assert.deepEqual(await refused, { type: 'closed', code: 'server_shutdown', message: ERRORS.server_shutdown.message });
    assert.equal(await lateCode, closeCodeFor('server_shutdown'));
    assert.deepEqual(late.call.phase, { kind: 'ended', code: 'server_shutdown', message: ERRORS.server_shutdown.message });

    // The call goes on during the grace time.
    const updated = guest.signaling.next('participantUpdated');
    host.call.setMediaState(false, true);
    assert.equal((await updated).participant.audio, false);
    assert.ok(Date.now() - sigterm < GRACE_MS, 'still within the grace time');

    for (const closed of await Promise.all(ended)) {
      assert.deepEqual(closed, { type: 'closed', code: 'server_shutdown', message: ERRORS.server_shutdown.message });
    }
    for (const code of await Promise.all(closeCodes)) assert.equal(code, closeCodeFor('server_shutdown'));
    const exit = await child.exited;
    assert.equal(exit.code, 0, 'exit status 0');
    assert.ok(exit.at - sigterm >= GRACE_MS - 100, 'the call had its grace time');
    assert.ok(exit.at - sigterm < GRACE_MS + 3000, `exited within the drain time (${exit.at - sigterm} ms)`);
    for (const c of [host, guest, idle, late]) c.signaling.close();

    // ------------------------------------------------ SIGTERM with no call: no need to wait
    child = await startChild(dataDir, port);
    children.push(child.process);
    const quiet = Date.now();
    child.process.kill('SIGTERM');
    const quietExit = await child.exited;
    assert.equal(quietExit.code, 0);
    assert.ok(quietExit.at - quiet < GRACE_MS, `with no call it exits at once (${quietExit.at - quiet} ms)`);
  });
});
