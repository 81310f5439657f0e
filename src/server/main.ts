/** Starts linkcall with the embedded defaults: one process, a SQLite file, the in-process SFU. */
import { join } from 'node:path';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { PostgresStore } from './store/postgres.js';
import { SqliteStore } from './store/sqlite.js';
import type { Store } from './store/store.js';

const config = loadConfig();
// DATABASE_URL: PostgreSQL, shared by the nodes of a cluster; otherwise the embedded SQLite file.
const store: Store = config.databaseUrl
  ? await PostgresStore.open(config.databaseUrl)
  : new SqliteStore(join(config.dataDir, 'linkcall.sqlite'));
const app = await buildApp({ config, store });
const { http } = app;
await http.listen({ port: config.port, host: config.host });
if (app.cluster) {
  // Other nodes relay signaling here: they need an address that reaches this process.
  const { port } = http.server.address() as import('node:net').AddressInfo;
  const nodeUrl = config.cluster?.nodeUrl ?? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  if (/\/\/(0\.0\.0\.0|\[::\])[:/]/.test(nodeUrl)) throw new Error('HOST listens on every address: set NODE_URL to the address other nodes reach this one at');
  await app.cluster.start(nodeUrl);
  http.log.info({ node: app.cluster.nodeId }, 'joined the cluster');
}
http.log.info(`linkcall is ready at ${config.publicUrl ?? `http://localhost:${config.port}`}`);

// SIGTERM/SIGINT: stop taking joins, tell everyone, let calls go on for SHUTDOWN_GRACE_MS,
// then end them and exit 0. A second signal cuts the grace short. See docs/OPERATIONS.md.
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) {
      http.log.info(`${signal} again: ending calls now`);
      void app.shutdown(0);
      return;
    }
    stopping = true;
    http.log.info(`${signal}: refusing new joins; calls may go on for ${config.shutdownGraceMs} ms`);
    // Whatever hangs, the process is gone shortly after the grace time.
    setTimeout(() => process.exit(1), config.shutdownGraceMs + 10_000).unref();
    void app
      .shutdown(config.shutdownGraceMs)
      .then(() => store.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          http.log.error({ err: { name: (err as Error)?.name } }, 'shutdown failed');
          process.exit(1);
        },
      );
  });
}
