/**
 * A linkcall cluster for a test: a real PostgreSQL and redis-server from Debian, and N
 * linkcall nodes as separate processes (`src/server/main.ts`, as in production) on
 * 127.0.0.1 and free ports, so a node can be killed with SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type TestPostgres } from './postgres.js';
import { startRedis, type TestRedis } from './redis.js';
import { freePort, stopChild, waitUntil } from './services.js';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface ClusterNode {
  id: string;
  url: string;
  process: ChildProcess;
  /** Everything the node wrote (JSON log lines). */
  output(): string;
  /** SIGKILL: the node vanishes without a word, as in a crash. */
  kill(): void;
  /** SIGTERM, then wait for the process to exit. */
  stop(): Promise<void>;
  get alive(): boolean;
}

export interface TestCluster {
  nodes: ClusterNode[];
  databaseUrl: string;
  redisUrl: string;
  close(): Promise<void>;
}

export interface ClusterOptions {
  /** Node ids, e.g. ['a', 'b', 'c']; a node's share of new calls is its `capacity` (default 1). */
  nodes: { id: string; capacity?: number }[];
  /** More environment for every node (e.g. TURN settings). */
  env?: Record<string, string>;
}

export async function startCluster(opts: ClusterOptions): Promise<TestCluster> {
  const postgres: TestPostgres = await startPostgres();
  let redis: TestRedis | undefined;
  const nodes: ClusterNode[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'linkcall-cluster-'));
  const close = async () => {
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
    await redis?.close();
    await postgres.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    redis = await startRedis();
    const databaseUrl = await postgres.database();
    const secret = randomBytes(24).toString('base64url');
    // One after the other: the first migrates the database.
    for (const spec of opts.nodes) nodes.push(await startNode(spec, { databaseUrl, redisUrl: redis.url, secret, dataDir, env: opts.env }));
    return { nodes, databaseUrl, redisUrl: redis.url, close };
  } catch (err) {
    await close();
    throw err;
  }
}

async function startNode(
  spec: { id: string; capacity?: number },
  shared: { databaseUrl: string; redisUrl: string; secret: string; dataDir: string; env?: Record<string, string> },
): Promise<ClusterNode> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server/main.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...shared.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: join(shared.dataDir, spec.id),
      DATABASE_URL: shared.databaseUrl,
      REDIS_URL: shared.redisUrl,
      CLUSTER_SECRET: shared.secret,
      NODE_ID: spec.id,
      NODE_CAPACITY: String(spec.capacity ?? 1),
      LOG_LEVEL: 'info',
      SHUTDOWN_GRACE_MS: '0',
    },
  });
  let output = '';
  const keep = (chunk: Buffer) => void (output = (output + chunk.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const node: ClusterNode = {
    id: spec.id,
    url,
    process: child,
    output: () => output,
    kill: () => void child.kill('SIGKILL'),
    stop: () => stopChild(child, 'SIGTERM', 10_000),
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
  };
  await waitUntil(
    async () => {
      if (!node.alive) throw new Error(`node ${spec.id} exited: ${output}`);
      return (await fetch(`${url}/readyz`)).status === 200;
    },
    30_000,
    () => output,
  );
  return node;
}
