/** Headers every response carries, and the Origin rule for WebSockets and API writes. */
import type { FastifyInstance } from 'fastify';
import { errorBody } from '../../protocol/http.js';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "media-src 'self' blob: mediastream:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "manifest-src 'self'",
  "font-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

const HSTS = 'max-age=31536000; includeSubDomains';

/**
 * `tls`: PUBLIC_URL is https. A request that itself came over TLS (or through a
 * trusted proxy saying `X-Forwarded-Proto: https`) gets HSTS as well.
 */
export function registerSecurityHeaders(app: FastifyInstance, tls: boolean, publicUrl?: string): void {
  // A page on another site must not be able to make a signed-in host's browser write
  // (SameSite=Lax already keeps the cookie off such requests; this is the second lock).
  app.addHook('onRequest', async (req, reply) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return;
    if (!req.url.startsWith('/api/')) return;
    if (!originAllowed(req.headers.origin, req.headers.host, publicUrl)) {
      return reply.code(403).send(errorBody('not_allowed'));
    }
  });
  app.addHook('onSend', async (req, reply) => {
    reply.header('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    reply.header('X-Content-Type-Options', 'nosniff');
    // A call link must never leak to another site through Referer.
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('X-Frame-Options', 'DENY');
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    reply.header('Cross-Origin-Resource-Policy', 'same-origin');
    reply.header('Permissions-Policy', 'camera=(self), microphone=(self), display-capture=(self)');
    if (tls || req.protocol === 'https') reply.header('Strict-Transport-Security', HSTS);
  });
}

/**
 * Browsers always send Origin on WebSocket upgrades and on cross-site POSTs; a
 * page on another site must not be able to drive a signed-in host's session.
 * Non-browser clients (bots, tests) send none and carry no cookie of a user.
 */
export function originAllowed(origin: string | undefined, host: string | undefined, publicUrl?: string): boolean {
  if (origin === undefined) return true;
  if (publicUrl && origin === new URL(publicUrl).origin) return true;
  if (!host) return false;
  return origin === `http://${host}` || origin === `https://${host}`;
}
