/**
 * The host's browser keeps each link's secret in IndexedDB, so its link list
 * can show full links. The secret never leaves the browser except inside the
 * link's #fragment, which browsers do not send to servers.
 */
const DB = 'linkcall';
const STORE = 'link-secrets';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run<T>(mode: IDBTransactionMode, action: (store: IDBObjectStore) => IDBRequest): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const req = action(db.transaction(STORE, mode).objectStore(STORE));
      req.onsuccess = () => resolve(req.result as T);
      req.onerror = () => reject(req.error);
    });
  } finally {
    db.close();
  }
}

/**
 * What this browser keeps of a link it made: the fragment (`k=<secret>&h=<host key hash>`) and the
 * host's signing key, whose hash the fragment pins (only this browser can be the link's host in
 * the encrypted call). Links made before host keys existed were kept as a bare secret.
 */
export interface StoredLink {
  fragment: string;
  hostKey?: { publicKey: string; signKey: string };
}

function stored(value: unknown): StoredLink | undefined {
  if (typeof value === 'string') return { fragment: `k=${value}` };
  if (typeof value === 'object' && value !== null && typeof (value as StoredLink).fragment === 'string') return value as StoredLink;
  return undefined;
}

export const linkSecrets = {
  save: (linkId: string, link: StoredLink) => run<void>('readwrite', (s) => s.put(link, linkId)),
  load: (linkId: string) =>
    run<unknown>('readonly', (s) => s.get(linkId)).then(stored, () => undefined),
  remove: (linkId: string) => run<void>('readwrite', (s) => s.delete(linkId)).catch(() => undefined),
};

/** The full link: page address plus the fragment (secret and host key hash). */
export function fullLink(path: string, fragment: string): string {
  return `${new URL(path, location.origin).href}#${fragment}`;
}
