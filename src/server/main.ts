/** Starts linkcall with the embedded defaults: one process, a SQLite file, the in-process SFU. */
import { join } from 'node:path';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';
import { SqliteStore } from './store/sqlite.js';

const config = loadConfig();
const store = new SqliteStore(join(config.dataDir, 'linkcall.sqlite'));
const { http } = await buildApp({ config, store });
await http.listen({ port: config.port, host: config.host });
http.log.info(`linkcall is ready at ${config.publicUrl ?? `http://localhost:${config.port}`}`);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    http.log.info(`${signal}: telling callers and shutting down`);
    void http
      .close()
      .then(() => store.close())
      .finally(() => process.exit(0));
  });
}
