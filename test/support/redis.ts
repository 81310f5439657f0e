/** A real redis-server from Debian for a test: 127.0.0.1, a free port, no persistence, in a temp directory. */
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { daemonDir, freePort, spawnDaemon, stopChild, waitUntil } from './services.js';

export interface TestRedis {
  url: string;
  close(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const dir = daemonDir('linkcall-redis-');
  const port = await freePort();
  const daemon = spawnDaemon('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes']);
  const url = `redis://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (daemon.child.exitCode !== null) throw new Error('redis-server exited');
      const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      client.on('error', () => {});
      try {
        await client.connect();
        return (await client.ping()) === 'PONG';
      } finally {
        client.disconnect();
      }
    },
    10_000,
    daemon.output,
  );
  return {
    url,
    async close() {
      await stopChild(daemon.child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
