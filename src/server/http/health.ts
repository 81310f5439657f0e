/**
 * Probes for orchestrators and load balancers. `/healthz`: the process is alive.
 * `/readyz`: send it new people — its database answers, it is registered in the
 * cluster (when there is one), and it is not draining for a shutdown.
 */
import type { FastifyInstance } from 'fastify';
import { healthResponse, readinessResponse } from '../../protocol/http.js';
import type { Store } from '../store/store.js';
import { protocolRoutes } from './schemas.js';

export interface Readiness {
  store: Store;
  /** False while shutting down: no new calls start here. */
  acceptingJoins(): boolean;
  /** The cluster registry's view (absent for a single node). */
  cluster?(): Promise<boolean>;
  rooms(): number;
}

export function registerHealth(fastify: FastifyInstance, r: Readiness): void {
  const app = protocolRoutes(fastify);
  app.get('/healthz', { schema: { response: { 200: healthResponse } } }, async () => ({ ok: true as const, rooms: r.rooms() }));
  app.get('/readyz', { schema: { response: { 200: readinessResponse, 503: readinessResponse } } }, async (_req, reply) => {
    const [database, cluster] = await Promise.all([
      r.store.ping ? r.store.ping() : Promise.resolve(true),
      r.cluster ? r.cluster().catch(() => false) : Promise.resolve(true),
    ]);
    const draining = !r.acceptingJoins();
    const ready = database && cluster && !draining;
    reply.header('Cache-Control', 'no-store');
    return reply.code(ready ? 200 : 503).send({ ready, database, cluster, draining });
  });
}
