/**
 * A linkcall server for the network lab, run inside the server's namespace by
 * `NetLab.startServer`: HTTP, signaling and the SFU's media on HOST (its lab address), a fresh
 * data directory, test rate limits (every host in a run signs up from one address). Prints
 * `listening <url>`; exits when stdin closes, so a crashed lab never leaves it behind.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../../src/server/app.js';
import { loadConfig } from '../../src/server/config.js';
import { SqliteStore } from '../../src/server/store/sqlite.js';

const host = process.env.HOST;
if (!host) throw new Error('HOST (the lab address) is required');
const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-netlab-server-'));
const config = loadConfig({ ...process.env, DATA_DIR: dataDir, PORT: '0', HOST: host, MEDIA_ADDRESS: host, LOG_LEVEL: 'warn' });
const store = new SqliteStore(join(dataDir, 'linkcall.sqlite'));
const app = await buildApp({
  config,
  store,
  rateLimits: { signUpsPerAddressPerHour: 1000, wsConnectionsPerAddress: 1000, knocksPerAddressPerMinute: 1000, knocksPerLinkPerMinute: 1000 },
  logger: { level: 'warn' },
});
await app.http.listen({ port: 0, host });
const address = app.http.server.address();
if (!address || typeof address === 'string') throw new Error('no address');
console.log(`listening http://${host}:${address.port}`);

let closing = false;
async function close(): Promise<void> {
  if (closing) return;
  closing = true;
  await app.http.close().catch(() => {});
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
}
process.stdin.on('end', close);
process.stdin.on('close', close);
process.stdin.resume();
process.on('SIGTERM', close);
