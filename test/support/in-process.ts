/** A linkcall app for `app.http.inject()`: in-process, no port, its own data directory. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp, type App } from '../../src/server/app.js';
import { loadConfig } from '../../src/server/config.js';
import { SqliteStore } from '../../src/server/store/sqlite.js';

export interface InProcessApp {
  app: App;
  close(): Promise<void>;
}

export async function inProcessApp(): Promise<InProcessApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-inject-'));
  const store = new SqliteStore(join(dataDir, 'linkcall.sqlite'));
  const app = await buildApp({ config: loadConfig({ DATA_DIR: dataDir, PORT: '0' }), store, logger: { level: 'warn' } });
  return {
    app,
    async close() {
      await app.http.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
