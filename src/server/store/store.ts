/**
 * What the server keeps: accounts, sessions and links. One interface, so the
 * embedded SQLite file and (later) PostgreSQL are interchangeable. Methods are
 * async because a networked database is.
 */
export interface Account {
  id: string;
  username: string;
  passwordHash: string;
  createdAt: number;
}

export interface Link {
  id: string;
  ownerId: string;
  name: string;
  createdAt: number;
  /** Set when the host deleted the link; the row stays so its page can say so. */
  deletedAt: number | null;
  /** MAC of {name, host name} made in the host's browser with the link's auth key; opaque here. */
  infoMac: string | null;
  /** After this moment (ms) nobody can join with the link; null or absent: it never expires. */
  expiresAt?: number | null;
  /** When someone last joined or knocked with the link (ms); null or absent: never. */
  lastUsedAt?: number | null;
}

export interface Store {
  createAccount(account: Account): Promise<void>;
  findAccountByUsername(username: string): Promise<Account | undefined>;
  findAccount(id: string): Promise<Account | undefined>;

  /** Sessions are stored by the SHA-256 of their token, never the token itself. */
  createSession(tokenHash: string, accountId: string, expiresAt: number): Promise<void>;
  findSessionAccount(tokenHash: string, now: number): Promise<Account | undefined>;
  deleteSession(tokenHash: string): Promise<void>;

  createLink(link: Link): Promise<void>;
  findLink(id: string): Promise<Link | undefined>;
  /** The owner's links that are not deleted, newest first. */
  listLinks(ownerId: string): Promise<Link[]>;
  /** Set once, by the owner; false when not the owner's, deleted, or already set. */
  setLinkInfoMac(id: string, ownerId: string, mac: string): Promise<boolean>;
  /** New name and its new info MAC together; false when not the owner's or deleted. */
  renameLink(id: string, ownerId: string, name: string, infoMac: string): Promise<boolean>;
  /** Records that someone joined or knocked with the link. */
  markLinkUsed(id: string, now: number): Promise<void>;
  /** Returns false when the link is not the owner's or is already deleted. */
  deleteLink(id: string, ownerId: string, now: number): Promise<boolean>;

  /** Whether the database answers (networked stores; for /readyz). Absent: always true. */
  ping?(): Promise<boolean>;

  close(): Promise<void>;
}
