/** A host's links: create, list, delete; and the public facts a join page shows. */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { LinkcallError } from '../../protocol/errors.js';
import {
  createLinkRequest,
  infoMacRequest,
  linkIdParams,
  linkList,
  linkPublicInfo,
  linkView,
  MAX_LINK_EXPIRY_MS,
  renameLinkRequest,
  type LinkView,
} from '../../protocol/http.js';
import type { RateLimiter } from '../access/rate-limit.js';
import { usableLink } from '../access/usable-link.js';
import type { Link, Store } from '../store/store.js';
import { accountOf, rateLimited, requireAccount, signedIn } from './auth.js';
import { protocolRoutes } from './schemas.js';

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

export function registerLinks(fastify: FastifyInstance, opts: LinksOptions): void {
  const { store, endCall, createLimit, maxLinksPerHost } = opts;
  const app = protocolRoutes(fastify);
  app.addHook('onClose', async () => createLimit.close());
  // Who is asking, then whether they may, before what they sent is looked at.
  const signedInHost = signedIn(store);

  const view = (l: Link): LinkView => ({
    id: l.id,
    name: l.name,
    createdAt: l.createdAt,
    expiresAt: l.expiresAt ?? null,
    lastUsedAt: l.lastUsedAt ?? null,
    path: `/join/${l.id}`,
  });

  app.get('/api/links', { schema: { response: { 200: linkList } }, preValidation: signedInHost }, async (req) => {
    return { links: (await store.listLinks(accountOf(req).id)).map(view) };
  });

  app.post(
    '/api/links',
    {
      // No body at all asks for a link with the default name that never expires.
      schema: { body: createLinkRequest.nullable(), response: { 201: linkView } },
      preValidation: [
        signedInHost,
        async (req, reply) => {
          const account = accountOf(req);
          if (!createLimit.take(account.id)) throw rateLimited(reply, createLimit.retryAfterMs(account.id));
        },
      ],
    },
    async (req, reply) => {
      const account = accountOf(req);
      const body = req.body ?? {};
      const now = Date.now();
      const expiresAt = body.expiresAt ?? null;
      if (expiresAt !== null && (expiresAt <= now || expiresAt > now + MAX_LINK_EXPIRY_MS)) throw new LinkcallError('bad_request');
      if ((await store.listLinks(account.id)).length >= maxLinksPerHost) throw new LinkcallError('too_many_links');
      const link: Link = {
        id: newLinkId(),
        ownerId: account.id,
        name: body.name || `${account.username}'s call`,
        createdAt: now,
        deletedAt: null,
        infoMac: null,
        expiresAt,
        lastUsedAt: null,
      };
      await store.createLink(link);
      return reply.code(201).send(view(link));
    },
  );

  /** The host's browser attaches the MAC of the link's public facts, once. */
  app.put('/api/links/:id/info-mac', { schema: { params: linkIdParams, body: infoMacRequest }, preValidation: signedInHost }, async (req, reply) => {
    if (!(await store.setLinkInfoMac(req.params.id, accountOf(req).id, req.body.mac))) throw new LinkcallError('link_not_found');
    return reply.code(204).send();
  });

  app.patch('/api/links/:id', { schema: { params: linkIdParams, body: renameLinkRequest }, preValidation: signedInHost }, async (req, reply) => {
    if (!(await store.renameLink(req.params.id, accountOf(req).id, req.body.name, req.body.mac))) throw new LinkcallError('link_not_found');
    return reply.code(204).send();
  });

  app.delete('/api/links/:id', { schema: { params: linkIdParams }, preValidation: signedInHost }, async (req, reply) => {
    if (!(await store.deleteLink(req.params.id, accountOf(req).id, Date.now()))) throw new LinkcallError('link_not_found');
    endCall(req.params.id);
    return reply.code(204).send();
  });

  /** What a guest's join page shows before joining. */
  app.get('/api/links/:id/info', { schema: { params: linkIdParams, response: { 200: linkPublicInfo } } }, async (req) => {
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
