/**
 * The networked store: PostgreSQL, for several linkcall nodes sharing accounts and links.
 * Same interface and the same versioned migrations as the SQLite store, in PostgreSQL's dialect.
 */
import pg from 'pg';
import type { Account, Link, Store } from './store.js';

/**
 * Each entry moves the schema one version up (recorded in `schema_version`); never edit a
 * shipped one. Entry n does what SQLite's MIGRATIONS[n] does.
 */
export const MIGRATIONS: string[] = [
  `CREATE TABLE accounts (
     id TEXT PRIMARY KEY,
     username TEXT NOT NULL,
     password_hash TEXT NOT NULL,
     created_at BIGINT NOT NULL
   );
   CREATE UNIQUE INDEX accounts_username ON accounts (lower(username));
   CREATE TABLE sessions (
     token_hash TEXT PRIMARY KEY,
     account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
     expires_at BIGINT NOT NULL
   );
   CREATE INDEX sessions_account ON sessions(account_id);
   CREATE TABLE links (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
     name TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     deleted_at BIGINT
   );
   CREATE INDEX links_owner ON links(owner_id, created_at);`,
  `ALTER TABLE links ADD COLUMN info_mac TEXT;`,
  `ALTER TABLE links ADD COLUMN expires_at BIGINT;
   ALTER TABLE links ADD COLUMN last_used_at BIGINT;`,
];

/** Any number: several nodes starting at once migrate one at a time. */
const MIGRATION_LOCK = 0x6c696e6b; // 'link'

interface AccountRow { id: string; username: string; password_hash: string; created_at: string }
interface LinkRow {
  id: string;
  owner_id: string;
  name: string;
  created_at: string;
  deleted_at: string | null;
  info_mac: string | null;
  expires_at: string | null;
  last_used_at: string | null;
}

// BIGINT comes back as a string (it may exceed 2^53); our values are millisecond timestamps.
const toTime = (v: string | null): number | null => (v === null ? null : Number(v));
const toAccount = (r: AccountRow): Account => ({
  id: r.id,
  username: r.username,
  passwordHash: r.password_hash,
  createdAt: Number(r.created_at),
});
const toLink = (r: LinkRow): Link => ({
  id: r.id,
  ownerId: r.owner_id,
  name: r.name,
  createdAt: Number(r.created_at),
  deletedAt: toTime(r.deleted_at),
  infoMac: r.info_mac,
  expiresAt: toTime(r.expires_at),
  lastUsedAt: toTime(r.last_used_at),
});

export class PostgresStore implements Store {
  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and migrates; rejects when the database cannot be reached. */
  static async open(connectionString: string, poolSize = 10): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString, max: poolSize });
    // An idle client losing its connection must not crash the process; the pool replaces it.
    pool.on('error', () => {});
    const store = new PostgresStore(pool);
    try {
      await store.migrate();
    } catch (err) {
      await pool.end();
      throw err;
    }
    return store;
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
      const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_version');
      let version = rows[0]?.version ?? 0;
      if (rows.length === 0) await client.query('INSERT INTO schema_version (version) VALUES (0)');
      for (; version < MIGRATIONS.length; version++) {
        await client.query('BEGIN');
        try {
          await client.query(MIGRATIONS[version]!);
          await client.query('UPDATE schema_version SET version = $1', [version + 1]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
      client.release();
    }
  }

  /** Whether the database answers (for /readyz). */
  async ping(): Promise<boolean> {
    try {
      await this.pool.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  async createAccount(a: Account): Promise<void> {
    await this.pool.query('INSERT INTO accounts (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)', [
      a.id,
      a.username,
      a.passwordHash,
      a.createdAt,
    ]);
  }

  async findAccountByUsername(username: string): Promise<Account | undefined> {
    const { rows } = await this.pool.query<AccountRow>('SELECT * FROM accounts WHERE lower(username) = lower($1)', [username]);
    return rows[0] && toAccount(rows[0]);
  }

  async findAccount(id: string): Promise<Account | undefined> {
    const { rows } = await this.pool.query<AccountRow>('SELECT * FROM accounts WHERE id = $1', [id]);
    return rows[0] && toAccount(rows[0]);
  }

  async createSession(tokenHash: string, accountId: string, expiresAt: number): Promise<void> {
    await this.pool.query('INSERT INTO sessions (token_hash, account_id, expires_at) VALUES ($1, $2, $3)', [
      tokenHash,
      accountId,
      expiresAt,
    ]);
  }

  async findSessionAccount(tokenHash: string, now: number): Promise<Account | undefined> {
    const { rows } = await this.pool.query<AccountRow>(
      `SELECT a.* FROM sessions s JOIN accounts a ON a.id = s.account_id
       WHERE s.token_hash = $1 AND s.expires_at > $2`,
      [tokenHash, now],
    );
    return rows[0] && toAccount(rows[0]);
  }

  async deleteSession(tokenHash: string): Promise<void> {
    await this.pool.query('DELETE FROM sessions WHERE token_hash = $1', [tokenHash]);
  }

  async createLink(l: Link): Promise<void> {
    await this.pool.query(
      `INSERT INTO links (id, owner_id, name, created_at, deleted_at, info_mac, expires_at, last_used_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [l.id, l.ownerId, l.name, l.createdAt, l.deletedAt, l.infoMac, l.expiresAt ?? null, l.lastUsedAt ?? null],
    );
  }

  async findLink(id: string): Promise<Link | undefined> {
    const { rows } = await this.pool.query<LinkRow>('SELECT * FROM links WHERE id = $1', [id]);
    return rows[0] && toLink(rows[0]);
  }

  async listLinks(ownerId: string): Promise<Link[]> {
    const { rows } = await this.pool.query<LinkRow>(
      'SELECT * FROM links WHERE owner_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id COLLATE "C"',
      [ownerId],
    );
    return rows.map(toLink);
  }

  async setLinkInfoMac(id: string, ownerId: string, mac: string): Promise<boolean> {
    const result = await this.pool.query(
      'UPDATE links SET info_mac = $1 WHERE id = $2 AND owner_id = $3 AND deleted_at IS NULL AND info_mac IS NULL',
      [mac, id, ownerId],
    );
    return result.rowCount === 1;
  }

  async renameLink(id: string, ownerId: string, name: string, infoMac: string): Promise<boolean> {
    const result = await this.pool.query(
      'UPDATE links SET name = $1, info_mac = $2 WHERE id = $3 AND owner_id = $4 AND deleted_at IS NULL',
      [name, infoMac, id, ownerId],
    );
    return result.rowCount === 1;
  }

  async markLinkUsed(id: string, now: number): Promise<void> {
    await this.pool.query('UPDATE links SET last_used_at = $1 WHERE id = $2', [now, id]);
  }

  async deleteLink(id: string, ownerId: string, now: number): Promise<boolean> {
    const result = await this.pool.query(
      'UPDATE links SET deleted_at = $1 WHERE id = $2 AND owner_id = $3 AND deleted_at IS NULL',
      [now, id, ownerId],
    );
    return result.rowCount === 1;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
