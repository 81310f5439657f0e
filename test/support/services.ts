/** Helpers shared by the test harnesses of real daemons (PostgreSQL, Redis, coturn): ports, users, waiting. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A TCP port on 127.0.0.1 that was free a moment ago (and, for UDP users, free on UDP too). */
export async function freePort(udpToo = false): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    if (!udpToo) return port;
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port');
}

/**
 * Daemons such as PostgreSQL refuse to run as root; when we are root, run them as this
 * unprivileged user (its directories are handed over to it).
 */
export function daemonUser(): { name: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
      const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
      return { name, uid, gid };
    } catch {
      // try the next one
    }
  }
  throw new Error('running as root and no unprivileged user (postgres, nobody) to run daemons as');
}

/** A fresh temp directory owned by the daemon user (when there is one). */
export function daemonDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const user = daemonUser();
  if (user) chownSync(dir, user.uid, user.gid);
  chmodSync(dir, 0o700);
  return dir;
}

/** Spawn a daemon as the unprivileged user when we are root; its output is kept for error messages. */
export function spawnDaemon(command: string, args: string[]): { child: ChildProcess; output: () => string } {
  const user = daemonUser();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/', ...(user ? { uid: user.uid, gid: user.gid } : {}) });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => output };
}

/** Run a command as the daemon user (synchronously). */
export function runAsDaemonUser(command: string, args: string[]): void {
  const user = daemonUser();
  execFileSync(command, args, { stdio: 'pipe', cwd: '/', ...(user ? { uid: user.uid, gid: user.gid } : {}) });
}

/** Retry `probe` until it resolves true, or fail after `timeoutMs` with `describe()` in the message. */
export async function waitUntil(probe: () => Promise<boolean>, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not ready within ${timeoutMs} ms: ${describe()}`);
}

/** Stop a child process: `signal` (default SIGTERM), then SIGKILL if it lingers. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
