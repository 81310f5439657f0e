/**
 * Imported first by main.tsx, before any module that builds zod schemas.
 *
 * Why: zod probes whether `new Function` is allowed when it builds an object
 * schema. Our CSP (script-src 'self', no 'unsafe-eval') forbids it; the probe's
 * exception is caught, but the browser still reports a CSP violation on every
 * page load (Firefox as a page error). Without JIT zod validates the same way,
 * just without the generated fast path; our messages are small.
 */
import { config } from 'zod';

config({ jitless: true });
