/**
 * A real PostgreSQL from Debian, started for a test: initdb into a temp directory (as an
 * unprivileged user when we are root), listening on 127.0.0.1 and a free port, its unix
 * socket in the same temp directory. Each `database()` is a fresh, empty database.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { daemonDir, freePort, runAsDaemonUser, spawnDaemon, stopChild, waitUntil } from './services.js';

export interface TestPostgres {
  /** A new empty database; returns its connection URL. */
  database(): Promise<string>;
  close(): Promise<void>;
}

/** Debian installs the server binaries under /usr/lib/postgresql/<major>/bin. */
export function postgresBin(name: string): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const major of majors) {
    const path = join(root, major, 'bin', name);
    if (existsSync(path)) return path;
  }
  throw new Error(`PostgreSQL's ${name} not found under ${root} (apt-get install postgresql)`);
}

export async function startPostgres(): Promise<TestPostgres> {
  const dir = daemonDir('linkcall-pg-');
  const dataDir = join(dir, 'data');
  runAsDaemonUser(postgresBin('initdb'), ['-D', dataDir, '-U', 'linkcall', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const { child, output } = spawnDaemon(postgresBin('postgres'), [
    '-D', dataDir,
    '-h', '127.0.0.1',
    '-p', String(port),
    '-k', dir,
    // A throwaway database: durability buys nothing here.
    '-c', 'fsync=off',
    '-c', 'synchronous_commit=off',
    '-c', 'full_page_writes=off',
    '-c', 'max_connections=100',
  ]);
  const admin = `postgres://linkcall@127.0.0.1:${port}/postgres`;
  await waitUntil(
    async () => {
      if (child.exitCode !== null) throw new Error(`postgres exited: ${output()}`);
      const client = new pg.Client({ connectionString: admin });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } finally {
        await client.end().catch(() => {});
      }
    },
    20_000,
    output,
  );
  let n = 0;
  return {
    async database() {
      const name = `linkcall_${process.pid}_${++n}`;
      const client = new pg.Client({ connectionString: admin });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://linkcall@127.0.0.1:${port}/${name}`;
    },
    async close() {
      // SIGINT = PostgreSQL's fast shutdown: disconnects clients instead of waiting for them.
      await stopChild(child, 'SIGINT', 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
