/**
 * "Is this link usable?" — asked by both of the server's entrances: the HTTP routes (join page,
 * link info, ICE servers) and signaling (join, and a call adopted from a lost node). It lives in
 * `access/`, beside the rate limits, rather than in `http/` or `store/`: it is a rule about who may
 * get in (deleted and expired links refuse everyone), not a route and not storage, and neither
 * entrance should have to import the other to apply it. It imports only `protocol/` and `store/`.
 */
import { LinkcallError } from '../../protocol/errors.js';
import { linkId } from '../../protocol/ids.js';
import type { Link, Store } from '../store/store.js';

/** The link behind an id, or the typed reason it can't be used (`link_not_found`, `link_deleted`, `link_expired`). */
export async function usableLink(store: Store, id: string, now = Date.now()): Promise<Link> {
  if (!linkId.safeParse(id).success) throw new LinkcallError('link_not_found');
  const link = await store.findLink(id);
  if (!link) throw new LinkcallError('link_not_found');
  if (link.deletedAt !== null) throw new LinkcallError('link_deleted');
  if (link.expiresAt != null && link.expiresAt <= now) throw new LinkcallError('link_expired');
  return link;
}
