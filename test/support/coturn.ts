/**
 * A real coturn (Debian's `turnserver`) for a test, on 127.0.0.1 only: `use-auth-secret`
 * with a random shared secret, relaying to loopback peers (allowed here only: the SFU's
 * host candidates are on 127.0.0.1), no TLS, no CLI.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { daemonDir, freePort, spawnDaemon, stopChild, waitUntil } from './services.js';
import { stunBinding } from './turn-client.js';

export interface TestCoturn {
  host: string;
  port: number;
  /** coturn's static-auth-secret: what linkcall's TURN_SECRET must be. */
  secret: string;
  /** e.g. turn:127.0.0.1:PORT?transport=udp */
  url: string;
  /** Everything coturn logged (for failure messages). */
  output(): string;
  close(): Promise<void>;
}

export async function startCoturn(): Promise<TestCoturn> {
  const dir = daemonDir('linkcall-turn-');
  const port = await freePort(true);
  const secret = randomBytes(24).toString('base64url');
  // Relay ports: a random window, so parallel test runs rarely collide.
  const minPort = 40000 + Math.floor(Math.random() * 200) * 100;
  const config = [
    'listening-ip=127.0.0.1',
    'relay-ip=127.0.0.1',
    `listening-port=${port}`,
    `min-port=${minPort}`,
    `max-port=${minPort + 99}`,
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    'realm=linkcall.test',
    'fingerprint',
    // Tests only: the SFU's candidates are on loopback. A real deployment must not allow this.
    'allow-loopback-peers',
    'no-cli',
    'no-tls',
    'no-dtls',
    'no-tcp-relay',
    'no-software-attribute',
    `userdb=${join(dir, 'turndb')}`,
    `pidfile=${join(dir, 'turnserver.pid')}`,
    'log-file=stdout',
    'simple-log',
  ];
  const configFile = join(dir, 'turnserver.conf');
  writeFileSync(configFile, config.join('\n') + '\n', { mode: 0o644 });
  const daemon = spawnDaemon('turnserver', ['-c', configFile]);
  await waitUntil(
    async () => {
      if (daemon.child.exitCode !== null) throw new Error('turnserver exited');
      return stunBinding('127.0.0.1', port, 300);
    },
    10_000,
    daemon.output,
  );
  return {
    host: '127.0.0.1',
    port,
    secret,
    url: `turn:127.0.0.1:${port}?transport=udp`,
    output: daemon.output,
    async close() {
      await stopChild(daemon.child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
