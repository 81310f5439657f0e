/** Accounts and sessions: sign up, sign in, sign out, who am I. */
import { hash, verify } from '@node-rs/argon2';
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LinkcallError } from '../../protocol/errors.js';
import { accountResponse, credentialsRequest, MIN_PASSWORD_LENGTH } from '../../protocol/http.js';
import { username as usernameFormat } from '../../protocol/ids.js';
import { addressKey, type FailureBackoff, type RateLimiter } from '../access/rate-limit.js';
import type { Account, Store } from '../store/store.js';
import { protocolRoutes } from './schemas.js';

export const SESSION_COOKIE = 'lc_session';
const SESSION_TTL_MS = 30 * 24 * 3600_000;

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

export function registerAuth(fastify: FastifyInstance, opts: AuthOptions): void {
  const { store, signInLimit, signUpLimit, signInFailuresPerAccount, signInFailuresPerAddress } = opts;
  const app = protocolRoutes(fastify);
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

  // Every attempt counts against its address, before its body is even looked at.
  const limitPerAddress = (limit: RateLimiter) => async (req: FastifyRequest, reply: FastifyReply) => {
    const address = addressKey(req.ip);
    if (!limit.take(address)) throw rateLimited(reply, limit.retryAfterMs(address));
  };
  const schema = { body: credentialsRequest, response: { 200: accountResponse, 201: accountResponse } };

  app.post('/api/signup', { schema, preValidation: limitPerAddress(signUpLimit) }, async (req, reply) => {
    const { username, password } = req.body;
    if (!usernameFormat.safeParse(username).success) throw new LinkcallError('invalid_username');
    if (password.length < MIN_PASSWORD_LENGTH) throw new LinkcallError('weak_password');
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

  app.post('/api/signin', { schema, preValidation: limitPerAddress(signInLimit) }, async (req, reply) => {
    const address = addressKey(req.ip);
    const { username, password } = req.body;
    // Keyed by the name as typed (usernames compare case-insensitively), whether or not the
    // account exists, so the answer never tells which usernames are real.
    const accountKey = username.toLowerCase();
    const wait = Math.max(signInFailuresPerAccount.waitMs(accountKey), signInFailuresPerAddress.waitMs(address));
    if (wait > 0) throw rateLimited(reply, wait);
    const account = await store.findAccountByUsername(username);
    const ok = await verify(account?.passwordHash ?? (await DUMMY_HASH), password);
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

  app.get('/api/me', { schema: { response: { 200: accountResponse } } }, async (req) => {
    const account = await requireAccount(store, req);
    return { username: account.username };
  });
}

const accounts = new WeakMap<FastifyRequest, Account>();

/** A route hook: refuse with `not_signed_in` before anything else; the handler gets the account from `accountOf`. */
export function signedIn(store: Store) {
  return async (req: FastifyRequest): Promise<void> => {
    accounts.set(req, await requireAccount(store, req));
  };
}

/** The account `signedIn` found for this request. */
export function accountOf(req: FastifyRequest): Account {
  const account = accounts.get(req);
  if (!account) throw new TypeError(`${req.routeOptions.url ?? req.url} has no signedIn hook`);
  return account;
}

export async function requireAccount(store: Store, req: FastifyRequest): Promise<Account> {
  const account = await sessionAccount(store, req.cookies[SESSION_COOKIE]);
  if (!account) throw new LinkcallError('not_signed_in');
  return account;
}
