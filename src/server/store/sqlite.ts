/** The embedded store: one SQLite file in WAL mode, migrated on open. */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Account, Link, Store } from './store.js';

/** Each entry moves the schema one version up (PRAGMA user_version); never edit a shipped one. */
const MIGRATIONS: string[] = [
  `CREATE TABLE accounts (
     id TEXT PRIMARY KEY,
     username TEXT NOT NULL UNIQUE COLLATE NOCASE,
     password_hash TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE TABLE sessions (
     token_hash TEXT PRIMARY KEY,
     account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX sessions_account ON sessions(account_id);
   CREATE TABLE links (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
     name TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     deleted_at INTEGER
   );
   CREATE INDEX links_owner ON links(owner_id, created_at);`,
  // The host's browser MACs the link's name and host name with a key from the link secret.
  `ALTER TABLE links ADD COLUMN info_mac TEXT;`,
  // Optional expiry, and when the link was last used (shown in the host's link list).
  `ALTER TABLE links ADD COLUMN expires_at INTEGER;
   ALTER TABLE links ADD COLUMN last_used_at INTEGER;`,
];

interface AccountRow { id: string; username: string; password_hash: string; created_at: number }
interface LinkRow {
  id: string;
  owner_id: string;
  name: string;
  created_at: number;
  deleted_at: number | null;
  info_mac: string | null;
  expires_at: number | null;
  last_used_at: number | null;
}

const toAccount = (r: AccountRow): Account => ({
  id: r.id,
  username: r.username,
  passwordHash: r.password_hash,
  createdAt: r.created_at,
});
const toLink = (r: LinkRow): Link => ({
  id: r.id,
  ownerId: r.owner_id,
  name: r.name,
  createdAt: r.created_at,
  deletedAt: r.deleted_at,
  infoMac: r.info_mac,
  expiresAt: r.expires_at,
  lastUsedAt: r.last_used_at,
});

export class SqliteStore implements Store {
  private readonly db: Database.Database;

  constructor(file: string) {
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  async createAccount(a: Account): Promise<void> {
    this.db
      .prepare('INSERT INTO accounts (id, username, password_hash, created_at) VALUES (?, ?, ?, ?)')
      .run(a.id, a.username, a.passwordHash, a.createdAt);
  }

  async findAccountByUsername(username: string): Promise<Account | undefined> {
    const row = this.db.prepare('SELECT * FROM accounts WHERE username = ?').get(username) as AccountRow | undefined;
    return row && toAccount(row);
  }

  async findAccount(id: string): Promise<Account | undefined> {
    const row = this.db.prepare('SELECT * FROM accounts WHERE id = ?').get(id) as AccountRow | undefined;
    return row && toAccount(row);
  }

  async createSession(tokenHash: string, accountId: string, expiresAt: number): Promise<void> {
    this.db
      .prepare('INSERT INTO sessions (token_hash, account_id, expires_at) VALUES (?, ?, ?)')
      .run(tokenHash, accountId, expiresAt);
  }

  async findSessionAccount(tokenHash: string, now: number): Promise<Account | undefined> {
    const row = this.db
      .prepare(
        `SELECT a.* FROM sessions s JOIN accounts a ON a.id = s.account_id
         WHERE s.token_hash = ? AND s.expires_at > ?`,
      )
      .get(tokenHash, now) as AccountRow | undefined;
    return row && toAccount(row);
  }

  async deleteSession(tokenHash: string): Promise<void> {
    this.db.prepare('DELETE FROM sessions WHERE token_hash = ?').run(tokenHash);
  }

  async createLink(l: Link): Promise<void> {
    this.db
      .prepare(
        'INSERT INTO links (id, owner_id, name, created_at, deleted_at, info_mac, expires_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(l.id, l.ownerId, l.name, l.createdAt, l.deletedAt, l.infoMac, l.expiresAt ?? null, l.lastUsedAt ?? null);
  }

  async findLink(id: string): Promise<Link | undefined> {
    const row = this.db.prepare('SELECT * FROM links WHERE id = ?').get(id) as LinkRow | undefined;
    return row && toLink(row);
  }

  async listLinks(ownerId: string): Promise<Link[]> {
    const rows = this.db
      .prepare('SELECT * FROM links WHERE owner_id = ? AND deleted_at IS NULL ORDER BY created_at DESC, id')
      .all(ownerId) as LinkRow[];
    return rows.map(toLink);
  }

  async setLinkInfoMac(id: string, ownerId: string, mac: string): Promise<boolean> {
    const result = this.db
      .prepare('UPDATE links SET info_mac = ? WHERE id = ? AND owner_id = ? AND deleted_at IS NULL AND info_mac IS NULL')
      .run(mac, id, ownerId);
    return result.changes === 1;
  }

  async renameLink(id: string, ownerId: string, name: string, infoMac: string): Promise<boolean> {
    const result = this.db
      .prepare('UPDATE links SET name = ?, info_mac = ? WHERE id = ? AND owner_id = ? AND deleted_at IS NULL')
      .run(name, infoMac, id, ownerId);
    return result.changes === 1;
  }

  async markLinkUsed(id: string, now: number): Promise<void> {
    this.db.prepare('UPDATE links SET last_used_at = ? WHERE id = ?').run(now, id);
  }

  async deleteLink(id: string, ownerId: string, now: number): Promise<boolean> {
    const result = this.db
      .prepare('UPDATE links SET deleted_at = ? WHERE id = ? AND owner_id = ? AND deleted_at IS NULL')
      .run(now, id, ownerId);
    return result.changes === 1;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
