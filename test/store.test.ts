import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { MIGRATIONS as POSTGRES_MIGRATIONS, PostgresStore } from '../src/server/store/postgres.js';
import { SqliteStore } from '../src/server/store/sqlite.js';
import type { Account, Link, Store } from '../src/server/store/store.js';
import { startPostgres, type TestPostgres } from './support/postgres.js';

/** One kind of store: `open()` gives a store over a fresh database; `reopen` one over the same database again. */
interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  fresh(): Promise<{ store: Store; reopen(): Promise<Store> }>;
}

const sqlite = (): Backend => {
  let dir = '';
  let n = 0;
  return {
    name: 'SQLite',
    async setup() {
      dir = mkdtempSync(join(tmpdir(), 'linkcall-store-'));
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
    async fresh() {
      const file = join(dir, `db${++n}.sqlite`);
      return { store: new SqliteStore(file), reopen: async () => new SqliteStore(file) };
    },
  };
};

const postgres = (): Backend => {
  let server: TestPostgres;
  return {
    name: 'PostgreSQL',
    async setup() {
      server = await startPostgres();
    },
    async teardown() {
      await server?.close();
    },
    async fresh() {
      const url = await server.database();
      return { store: await PostgresStore.open(url), reopen: () => PostgresStore.open(url) };
    },
  };
};

let ids = 0;
const account = (username: string, createdAt = Date.now()): Account => ({
  id: `acct${++ids}`,
  username,
  passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$not-a-real-hash',
  createdAt,
});
const link = (ownerId: string, createdAt: number, name = 'A call'): Link => ({
  id: `link${String(++ids).padStart(18, '0')}`,
  ownerId,
  name,
  createdAt,
  deletedAt: null,
  infoMac: null,
  expiresAt: null,
  lastUsedAt: null,
});

for (const backend of [sqlite(), postgres()]) {
  describe(`the ${backend.name} store`, { timeout: 60_000 }, () => {
    const open: Store[] = [];
    const fresh = async () => {
      const f = await backend.fresh();
      open.push(f.store);
      return f;
    };
    before(() => backend.setup());
    after(async () => {
      for (const s of open) await s.close().catch(() => {});
      await backend.teardown();
    });

    it('keeps accounts, found by id or by username in any letter case', async () => {
      const { store } = await fresh();
      const ana = account('Ana', 1_760_000_000_123);
      await store.createAccount(ana);
      assert.deepEqual(await store.findAccount(ana.id), ana);
      assert.deepEqual(await store.findAccountByUsername('ana'), ana);
      assert.deepEqual(await store.findAccountByUsername('ANA'), ana);
      assert.equal(await store.findAccountByUsername('bob'), undefined);
      assert.equal(await store.findAccount('nobody'), undefined);
    });

    it('refuses a second account with the same username, whatever the letter case', async () => {
      const { store } = await fresh();
      await store.createAccount(account('carla'));
      await assert.rejects(store.createAccount(account('Carla')));
      await assert.rejects(store.createAccount(account('carla')));
    });

    it('finds a session\'s account until it expires, and not after it is deleted', async () => {
      const { store } = await fresh();
      const dan = account('dan');
      await store.createAccount(dan);
      const expiresAt = Date.now() + 30 * 24 * 3600_000;
      await store.createSession('hash-1', dan.id, expiresAt);
      assert.deepEqual(await store.findSessionAccount('hash-1', Date.now()), dan);
      assert.equal(await store.findSessionAccount('hash-1', expiresAt), undefined, 'expired at its expiry time');
      assert.equal(await store.findSessionAccount('hash-2', Date.now()), undefined);
      await store.deleteSession('hash-1');
      assert.equal(await store.findSessionAccount('hash-1', Date.now()), undefined);
      await store.deleteSession('hash-1'); // deleting twice is harmless
    });

    it('lists a host\'s own live links, newest first, with timestamps as numbers', async () => {
      const { store } = await fresh();
      const erin = account('erin');
      const finn = account('finn');
      await store.createAccount(erin);
      await store.createAccount(finn);
      const older = link(erin.id, 1_760_000_000_001, 'Older');
      const newer = link(erin.id, 1_760_000_000_999, 'Newer');
      const other = link(finn.id, 1_760_000_000_500);
      for (const l of [older, other, newer]) await store.createLink(l);
      const listed = await store.listLinks(erin.id);
      assert.deepEqual(listed.map((l) => l.name), ['Newer', 'Older']);
      assert.deepEqual(listed[0], newer);
      assert.equal(typeof listed[0]!.createdAt, 'number');
      assert.deepEqual(await store.findLink(other.id), other);
      assert.equal(await store.findLink('link-that-does-not-exist'), undefined);
    });

    it('sets a link\'s info MAC once, and only for its owner', async () => {
      const { store } = await fresh();
      const gia = account('gia');
      const hal = account('hal');
      await store.createAccount(gia);
      await store.createAccount(hal);
      const l = link(gia.id, Date.now());
      await store.createLink(l);
      assert.equal(await store.setLinkInfoMac(l.id, hal.id, 'mac-from-someone-else'), false);
      assert.equal(await store.setLinkInfoMac(l.id, gia.id, 'mac-1'), true);
      assert.equal(await store.setLinkInfoMac(l.id, gia.id, 'mac-2'), false, 'set once');
      assert.equal((await store.findLink(l.id))?.infoMac, 'mac-1');
    });

    it('keeps a link\'s expiry, renames it (name and MAC together) for its owner only, and records its last use', async () => {
      const { store } = await fresh();
      const mia = account('mia');
      const ned = account('ned');
      await store.createAccount(mia);
      await store.createAccount(ned);
      const l = { ...link(mia.id, Date.now()), expiresAt: 1_790_000_000_000 };
      await store.createLink(l);
      assert.deepEqual(await store.findLink(l.id), l);
      assert.equal(await store.renameLink(l.id, ned.id, 'Hijacked', 'mac-x'), false);
      assert.equal(await store.renameLink(l.id, mia.id, 'Renamed', 'mac-r'), true);
      await store.markLinkUsed(l.id, 1_770_000_000_777);
      const found = await store.findLink(l.id);
      assert.deepEqual(
        [found?.name, found?.infoMac, found?.lastUsedAt, found?.expiresAt],
        ['Renamed', 'mac-r', 1_770_000_000_777, 1_790_000_000_000],
      );
      await store.deleteLink(l.id, mia.id, Date.now());
      assert.equal(await store.renameLink(l.id, mia.id, 'Too late', 'mac-z'), false, 'no renaming a deleted link');
    });

    it('deletes a link for its owner only, once; the deleted link is still found, marked deleted', async () => {
      const { store } = await fresh();
      const ivy = account('ivy');
      const jon = account('jon');
      await store.createAccount(ivy);
      await store.createAccount(jon);
      const l = link(ivy.id, Date.now());
      await store.createLink(l);
      assert.equal(await store.deleteLink(l.id, jon.id, Date.now()), false);
      const at = 1_760_000_123_456;
      assert.equal(await store.deleteLink(l.id, ivy.id, at), true);
      assert.equal(await store.deleteLink(l.id, ivy.id, at + 1), false, 'already deleted');
      assert.equal((await store.findLink(l.id))?.deletedAt, at);
      assert.deepEqual(await store.listLinks(ivy.id), []);
      assert.equal(await store.setLinkInfoMac(l.id, ivy.id, 'late-mac'), false, 'no MAC on a deleted link');
    });

    it('keeps everything across a restart, without migrating again', async () => {
      const { store, reopen } = await fresh();
      const kim = account('kim');
      await store.createAccount(kim);
      const l = link(kim.id, Date.now());
      await store.createLink(l);
      await store.close();
      open.splice(open.indexOf(store), 1);
      const again = await reopen();
      open.push(again);
      assert.deepEqual(await again.findAccountByUsername('kim'), kim);
      assert.deepEqual(await again.findLink(l.id), l);
    });

    it('lets several servers open the same empty database at once (each migration runs once)', async () => {
      const { store, reopen } = await fresh();
      const others = await Promise.all([reopen(), reopen(), reopen()]);
      open.push(...others);
      const lee = account('lee');
      await others[0]!.createAccount(lee);
      for (const s of [store, ...others]) assert.deepEqual(await s.findAccount(lee.id), lee);
    });
  });
}

describe('the two stores', () => {
  it('have the same number of schema versions (a SQLite migration needs its PostgreSQL twin)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'linkcall-store-'));
    try {
      const file = join(dir, 'v.sqlite');
      await new SqliteStore(file).close();
      const db = new Database(file, { readonly: true });
      const sqliteVersion = db.pragma('user_version', { simple: true });
      db.close();
      assert.equal(POSTGRES_MIGRATIONS.length, sqliteVersion);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
