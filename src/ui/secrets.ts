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

export const linkSecrets = {
  save: (linkId: string, encodedSecret: string) => run<void>('readwrite', (s) => s.put(encodedSecret, linkId)),
  load: (linkId: string) => run<string | undefined>('readonly', (s) => s.get(linkId)).catch(() => undefined),
  remove: (linkId: string) => run<void>('readwrite', (s) => s.delete(linkId)).catch(() => undefined),
};

/** The full link: page address plus the secret in the fragment. */
export function fullLink(path: string, encodedSecret: string): string {
  return `${new URL(path, location.origin).href}#k=${encodedSecret}`;
}

/** The secret from this page's fragment (`#k=…`), or undefined when missing. */
export function secretFromFragment(): string | undefined {
  const match = /(?:^#|&)k=([^&]*)/.exec(location.hash);
  return match?.[1];
}
