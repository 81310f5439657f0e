/** Configuration from the environment, read once at start. */
import { resolve } from 'node:path';
import { z } from 'zod';

const env = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('127.0.0.1'),
  DATA_DIR: z.string().default('./data'),
  PUBLIC_URL: z.string().url().optional(),
  /** Address the SFU's ICE binds to and announces (e.g. the machine's public address). */
  MEDIA_ADDRESS: z.string().default('127.0.0.1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'silent']).default('info'),
});

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** Origin users reach the server at; defaults to http://localhost:PORT. */
  publicUrl?: string;
  mediaAddress: string;
  logLevel: string;
  /** Directory of the built browser app. */
  publicDir: string;
}

export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const e = env.parse(source);
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir: resolve(e.DATA_DIR),
    publicUrl: e.PUBLIC_URL?.replace(/\/$/, ''),
    mediaAddress: e.MEDIA_ADDRESS,
    logLevel: e.LOG_LEVEL,
    publicDir: resolve(import.meta.dirname, '../../dist/public'),
  };
}
