/** Accounts and sessions: sign up, sign in, sign out, who am I. */
import { hash, verify } from '@node-rs/argon2';
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { LinkcallError } from '../../protocol/errors.js';
import type { Account, Store } from '../store/store.js';
import { addressKey, type FailureBackoff, type RateLimiter } from '../access/rate-limit.js';

export const SESSION_COOKIE = 'lc_session';
const SESSION_TTL_MS = 30 * 24 * 3600_000;

const credentials = z.strictObject({
  username: z.string().max(200),
  password: z.string().max(1024),
});
const USERNAME = /^[A-Za-z0-9._-]{3,32}$/;

// A fixed hash to verify against when the username is unknown, so a failed
// sign-in takes as long whether or not the account exists.
const DUMMY_HASH = hash('not-a-real-password-' + randomBytes(8).toString('hex'));

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The signed-in account behind a request's session cookie, if any. */
export async function sessionAccount(store: Store, cookieValue: string | undefined): Promise<Account | undefined> {
  if (!cookieValue || cookieValue.length > 100) return undefined;
  return store.findSessionAccount(hashToken(cookieValue), Date.now());
}

export interface AuthOptions {
  store: Store;
  /** Always mark cookies Secure (PUBLIC_URL is https); otherwise only requests that came over TLS. */
  secureCookies: boolean;
  signInLimit: RateLimiter;
  signUpLimit: RateLimiter;
  /** Failed sign-ins per username and per address: each failure past the free ones doubles the wait. */
  signInFailuresPerAccount: FailureBackoff;
  signInFailuresPerAddress: FailureBackoff;
}

/** Refuse with `rate_limited`, telling the client when it may try again. */
export function rateLimited(reply: FastifyReply, retryAfterMs: number): LinkcallError {
  reply.header('Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  return new LinkcallError('rate_limited');
}

export function registerAuth(app: FastifyInstance, opts: AuthOptions): void {
  const { store, signInLimit, signUpLimit, signInFailuresPerAccount, signInFailuresPerAddress } = opts;
  app.addHook('onClose', async () => {
    signInLimit.close();
    signUpLimit.close();
    signInFailuresPerAccount.close();
    signInFailuresPerAddress.close();
  });

  async function startSession(req: FastifyRequest, reply: FastifyReply, account: Account): Promise<void> {
    const token = randomBytes(32).toString('base64url');
    await store.createSession(hashToken(token), account.id, Date.now() + SESSION_TTL_MS);
    reply.setCookie(SESSION_COOKIE, token, {
      path: '/',
      httpOnly: true,
      sameSite: 'lax',
      // req.protocol is https behind a trusted proxy that says X-Forwarded-Proto: https.
      secure: opts.secureCookies || req.protocol === 'https',
      maxAge: SESSION_TTL_MS / 1000,
    });
  }

  app.post('/api/signup', async (req, reply) => {
    const address = addressKey(req.ip);
    if (!signUpLimit.take(address)) throw rateLimited(reply, signUpLimit.retryAfterMs(address));
    const body = credentials.safeParse(req.body);
    if (!body.success) throw new LinkcallError('bad_request');
    const { username, password } = body.data;
    if (!USERNAME.test(username)) throw new LinkcallError('invalid_username');
    if (password.length < 8) throw new LinkcallError('weak_password');
    if (await store.findAccountByUsername(username)) throw new LinkcallError('username_taken');
    const account: Account = {
      id: randomBytes(12).toString('base64url'),
      username,
      passwordHash: await hash(password),
      createdAt: Date.now(),
    };
    await store.createAccount(account);
    await startSession(req, reply, account);
    return reply.code(201).send({ username });
  });

  app.post('/api/signin', async (req, reply) => {
    const address = addressKey(req.ip);
    if (!signInLimit.take(address)) throw rateLimited(reply, signInLimit.retryAfterMs(address));
    const body = credentials.safeParse(req.body);
    if (!body.success) throw new LinkcallError('bad_request');
    // Keyed by the name as typed (usernames compare case-insensitively), whether or not the
    // account exists, so the answer never tells which usernames are real.
    const accountKey = body.data.username.toLowerCase();
    const wait = Math.max(signInFailuresPerAccount.waitMs(accountKey), signInFailuresPerAddress.waitMs(address));
    if (wait > 0) throw rateLimited(reply, wait);
    const account = await store.findAccountByUsername(body.data.username);
    const ok = await verify(account?.passwordHash ?? (await DUMMY_HASH), body.data.password);
    if (!account || !ok) {
      signInFailuresPerAccount.failed(accountKey);
      signInFailuresPerAddress.failed(address);
      throw new LinkcallError('bad_credentials');
    }
    // Only the account's count is cleared: signing in to one's own account must not
    // reset an address that is guessing at others.
    signInFailuresPerAccount.succeeded(accountKey);
    await startSession(req, reply, account);
    return { username: account.username };
  });

  app.post('/api/signout', async (req, reply) => {
    const token = req.cookies[SESSION_COOKIE];
    if (token) await store.deleteSession(hashToken(token));
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.code(204).send();
  });

  app.get('/api/me', async (req) => {
    const account = await requireAccount(store, req);
    return { username: account.username };
  });
}

export async function requireAccount(store: Store, req: FastifyRequest): Promise<Account> {
  const account = await sessionAccount(store, req.cookies[SESSION_COOKIE]);
  if (!account) throw new LinkcallError('not_signed_in');
  return account;
}
