/**
 * "Check my connection": `GET /api/check/ice` gives the page this server's ICE servers (TURN
 * credentials valid 10 minutes), `POST /api/check/offer` answers one path's offer with a probe on
 * the SFU's network settings (sfu/connection-checks.ts). Anyone may check (the page is for people
 * before they have a link), so both are rate-limited per address and probes are few and short-lived.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { checkAnswer, checkOffer, iceConfig as iceConfigShape } from '../../protocol/http.js';
import { LinkcallError } from '../../protocol/errors.js';
import type { Config } from '../config.js';
import type { ConnectionChecks } from '../sfu/connection-checks.js';
import { iceConfig } from './ice.js';
import { addressKey, RateLimiter } from '../access/rate-limit.js';
import { protocolRoutes } from './schemas.js';

const CHECK_CREDENTIAL_TTL_S = 600;
/** A check is one ICE request and up to four offers; a few retries fit. */
const REQUESTS_PER_ADDRESS_PER_MINUTE = 30;

export function registerConnectionCheck(fastify: FastifyInstance, opts: { config: Config; checks: ConnectionChecks; clientAddress?: (req: FastifyRequest) => string }): void {
  const app = protocolRoutes(fastify);
  const limit = new RateLimiter(REQUESTS_PER_ADDRESS_PER_MINUTE, 60_000);
  app.addHook('onClose', async () => {
    limit.close();
    opts.checks.close();
  });
  // Every request counts against its address, before its body is even looked at.
  const take = async (req: FastifyRequest) => {
    if (!limit.take(addressKey(opts.clientAddress?.(req) ?? req.ip))) throw new LinkcallError('rate_limited');
  };

  app.get('/api/check/ice', { schema: { response: { 200: iceConfigShape } }, preValidation: take }, async (_req, reply) => {
    reply.header('Cache-Control', 'no-store');
    const config = opts.config.turn ? { ...opts.config, turn: { ...opts.config.turn, ttlSeconds: CHECK_CREDENTIAL_TTL_S } } : opts.config;
    return iceConfig(config);
  });

  app.post('/api/check/offer', { schema: { body: checkOffer, response: { 200: checkAnswer } }, preValidation: take }, async (req) => {
    return { sdp: await opts.checks.answer(req.body.sdp) };
  });
}
