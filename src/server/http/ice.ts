/**
 * What a page needs for its RTCPeerConnections: ICE servers with short-lived TURN
 * credentials, and the transport policy. coturn runs with `use-auth-secret`: a
 * credential is the TURN REST API's (username `expiry:id`, password base64
 * HMAC-SHA1 of the username with the shared secret), so coturn checks it with no
 * database and refuses it once the expiry has passed.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { iceConfig as iceConfigShape, linkIdParams, type IceConfig, type IceServer } from '../../protocol/http.js';
import { usableLink } from '../access/usable-link.js';
import type { Config } from '../config.js';
import type { Store } from '../store/store.js';
import { protocolRoutes } from './schemas.js';

/**
 * TURN REST credentials. The id part is random, not a user or participant id:
 * coturn logs usernames, and they must not tell who was calling.
 */
export function turnCredentials(secret: string, ttlSeconds: number, now = Date.now()): { username: string; credential: string; expiresAt: number } {
  const expiry = Math.floor(now / 1000) + ttlSeconds;
  const username = `${expiry}:${randomBytes(6).toString('base64url')}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential, expiresAt: expiry * 1000 };
}

export function iceConfig(config: Pick<Config, 'turn' | 'iceTransportPolicy'>, now = Date.now()): IceConfig {
  const turn = config.turn;
  if (!turn) return { iceServers: [], iceTransportPolicy: config.iceTransportPolicy };
  const stun = turn.urls.filter((u) => u.startsWith('stun:'));
  const relays = turn.urls.filter((u) => !u.startsWith('stun:'));
  const iceServers: IceServer[] = [];
  if (stun.length > 0) iceServers.push({ urls: stun });
  if (relays.length === 0) return { iceServers, iceTransportPolicy: config.iceTransportPolicy };
  const { username, credential, expiresAt } = turnCredentials(turn.secret, turn.ttlSeconds, now);
  iceServers.push({ urls: relays, username, credential });
  return { iceServers, iceTransportPolicy: config.iceTransportPolicy, expiresAt };
}

/**
 * `GET /api/links/:id/ice`: only for a link that can be joined, so the TURN server
 * relays for people holding a live link, not for anyone who finds the endpoint.
 */
export function registerIce(app: FastifyInstance, opts: { store: Store; config: Config }): void {
  protocolRoutes(app).get('/api/links/:id/ice', { schema: { params: linkIdParams, response: { 200: iceConfigShape } } }, async (req, reply) => {
    await usableLink(opts.store, req.params.id);
    reply.header('Cache-Control', 'no-store');
    return iceConfig(opts.config);
  });
}
