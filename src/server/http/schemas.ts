/**
 * Routes declare their request and response shapes with the zod schemas of `protocol/http.ts`
 * (`schema: { params, body, response }`); this makes fastify validate requests with them and
 * type handlers by them. A request that fails its schema is refused from the error registry:
 * a malformed id in the path (every path parameter is a link id) is `link_not_found`, exactly
 * as an unknown one; anything else is `bad_request`.
 */
import type { FastifyInstance, FastifyTypeProvider } from 'fastify';
import type { z } from 'zod';
import { LinkcallError } from '../../protocol/errors.js';

export interface ProtocolTypeProvider extends FastifyTypeProvider {
  validator: this['schema'] extends z.ZodType ? z.output<this['schema']> : unknown;
  serializer: this['schema'] extends z.ZodType ? z.input<this['schema']> : unknown;
}

export function useProtocolSchemas(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => (data) => {
    const result = (schema as z.ZodType).safeParse(data);
    if (result.success) return { value: result.data };
    return { error: new LinkcallError(httpPart === 'params' ? 'link_not_found' : 'bad_request') };
  });
  // Response schemas type the handlers' answers at compile time; the answers are sent as they are.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
}

/** `app` with handlers typed by their protocol schemas. */
export function protocolRoutes(app: FastifyInstance) {
  return app.withTypeProvider<ProtocolTypeProvider>();
}
