/** A host's links: create, list, delete; and the public facts a join page shows. */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { LinkcallError } from '../../protocol/errors.js';
import { linkId as linkIdSchema } from '../../protocol/messages.js';
import type { Link, Store } from '../store/store.js';
import { rateLimited, requireAccount } from './auth.js';
import type { RateLimiter } from '../access/rate-limit.js';
import { usableLink } from '../access/usable-link.js';

const linkName = z
  .string()
  .max(200)
  .transform((s) => s.trim())
  .pipe(z.string().max(80).refine((s) => !/[\u0000-\u001f\u007f-\u009f]/.test(s)));

/** Longest expiry a host may set. */
const MAX_EXPIRY_MS = 366 * 24 * 3600_000;

const createBody = z.strictObject({
  name: linkName.optional(),
  /** When the link stops working (ms since the epoch); absent: never. */
  expiresAt: z.number().int().positive().optional(),
});

const macString = z.string().regex(/^[A-Za-z0-9_-]{16,128}$/);
const infoMacBody = z.strictObject({ mac: macString });
/** A new name needs a new MAC (made in the host's browser), or guests would see the link as altered. */
const renameBody = z.strictObject({ name: linkName.pipe(z.string().min(1)), mac: macString });

export function newLinkId(): string {
  return randomBytes(16).toString('base64url');
}

export interface LinksOptions {
  store: Store;
  /** End the link's call (wherever it lives) for everyone: the link was deleted. */
  endCall: (linkId: string) => void;
  createLimit: RateLimiter;
  /** Links one account may keep (deleted ones do not count). */
  maxLinksPerHost: number;
}

export function registerLinks(app: FastifyInstance, opts: LinksOptions): void {
  const { store, endCall, createLimit, maxLinksPerHost } = opts;
  app.addHook('onClose', async () => createLimit.close());

  const view = (l: Link) => ({
    id: l.id,
    name: l.name,
    createdAt: l.createdAt,
    expiresAt: l.expiresAt ?? null,
    lastUsedAt: l.lastUsedAt ?? null,
    path: `/join/${l.id}`,
  });

  app.get('/api/links', async (req) => {
    const account = await requireAccount(store, req);
    return { links: (await store.listLinks(account.id)).map(view) };
  });

  app.post('/api/links', async (req, reply) => {
    const account = await requireAccount(store, req);
    if (!createLimit.take(account.id)) throw rateLimited(reply, createLimit.retryAfterMs(account.id));
    const body = createBody.safeParse(req.body ?? {});
    if (!body.success) throw new LinkcallError('bad_request');
    const now = Date.now();
    const expiresAt = body.data.expiresAt ?? null;
    if (expiresAt !== null && (expiresAt <= now || expiresAt > now + MAX_EXPIRY_MS)) throw new LinkcallError('bad_request');
    if ((await store.listLinks(account.id)).length >= maxLinksPerHost) throw new LinkcallError('too_many_links');
    const link: Link = {
      id: newLinkId(),
      ownerId: account.id,
      name: body.data.name || `${account.username}'s call`,
      createdAt: now,
      deletedAt: null,
      infoMac: null,
      expiresAt,
      lastUsedAt: null,
    };
    await store.createLink(link);
    return reply.code(201).send(view(link));
  });

  /** The host's browser attaches the MAC of the link's public facts, once. */
  app.put<{ Params: { id: string } }>('/api/links/:id/info-mac', async (req, reply) => {
    const account = await requireAccount(store, req);
    const body = infoMacBody.safeParse(req.body);
    if (!body.success) throw new LinkcallError('bad_request');
    if (!linkIdSchema.safeParse(req.params.id).success) throw new LinkcallError('link_not_found');
    if (!(await store.setLinkInfoMac(req.params.id, account.id, body.data.mac))) throw new LinkcallError('link_not_found');
    return reply.code(204).send();
  });

  app.patch<{ Params: { id: string } }>('/api/links/:id', async (req, reply) => {
    const account = await requireAccount(store, req);
    const body = renameBody.safeParse(req.body);
    if (!body.success) throw new LinkcallError('bad_request');
    if (!linkIdSchema.safeParse(req.params.id).success) throw new LinkcallError('link_not_found');
    if (!(await store.renameLink(req.params.id, account.id, body.data.name, body.data.mac))) throw new LinkcallError('link_not_found');
    return reply.code(204).send();
  });

  app.delete<{ Params: { id: string } }>('/api/links/:id', async (req, reply) => {
    const account = await requireAccount(store, req);
    if (!linkIdSchema.safeParse(req.params.id).success) throw new LinkcallError('link_not_found');
    if (!(await store.deleteLink(req.params.id, account.id, Date.now()))) throw new LinkcallError('link_not_found');
    endCall(req.params.id);
    return reply.code(204).send();
  });

  /** What a guest's join page shows before joining. */
  app.get<{ Params: { id: string } }>('/api/links/:id/info', async (req) => {
    const info = await usableLink(store, req.params.id);
    const account = await store.findAccount(info.ownerId);
    const viewer = await requireAccount(store, req).catch(() => undefined);
    return {
      name: info.name,
      hostName: account?.username ?? '',
      infoMac: info.infoMac,
      isOwner: viewer?.id === info.ownerId,
    };
  });
}
