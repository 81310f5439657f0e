/**
 * "Check my connection": `GET /api/check/ice` gives the page this server's ICE servers (TURN
 * credentials valid 10 minutes), `POST /api/check/offer` answers one path's offer with a
 * ConnectionProbe. Anyone may check (the page is for people before they have a link), so both are
 * rate-limited per address and probes are few and short-lived.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { checkAnswer, checkOffer, iceConfig as iceConfigShape } from '../../protocol/http.js';
import { LinkcallError } from '../../protocol/errors.js';
import { mediaNetwork, type Config } from '../config.js';
import { ConnectionProbe } from '../media/connection-probe.js';
import { iceConfig } from './ice.js';
import { addressKey, RateLimiter } from '../access/rate-limit.js';
import { protocolRoutes } from './schemas.js';

const CHECK_CREDENTIAL_TTL_S = 600;
const PROBE_LIFETIME_MS = 20_000;
const MAX_PROBES = 32;
/** A check is one ICE request and up to four offers; a few retries fit. */
const REQUESTS_PER_ADDRESS_PER_MINUTE = 30;

export function registerConnectionCheck(fastify: FastifyInstance, opts: { config: Config; clientAddress?: (req: FastifyRequest) => string }): void {
  const app = protocolRoutes(fastify);
  const limit = new RateLimiter(REQUESTS_PER_ADDRESS_PER_MINUTE, 60_000);
  const probes = new Set<ConnectionProbe>();
  const network = (() => {
    const n = mediaNetwork(opts.config);
    return {
      bindAddress: n.bindAddress,
      announcedAddress: n.announcedAddress,
      portRange: n.portRangeBegin !== undefined && n.portRangeEnd !== undefined ? { begin: n.portRangeBegin, end: n.portRangeEnd } : undefined,
      relayEntrance: n.relayEntrance,
    };
  })();
  app.addHook('onClose', async () => {
    limit.close();
    for (const probe of [...probes]) probe.close();
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
    if (probes.size >= MAX_PROBES) throw new LinkcallError('rate_limited');
    const probe = new ConnectionProbe(network, PROBE_LIFETIME_MS);
    probes.add(probe);
    probe.onClose = () => probes.delete(probe);
    try {
      return { sdp: await probe.answer(req.body.sdp) };
    } catch (err) {
      probe.close();
      if (err instanceof TypeError) throw new LinkcallError('bad_request');
      throw err;
    }
  });
}
