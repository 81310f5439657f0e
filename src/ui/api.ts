/**
 * The HTTP API as the pages use it, with the shapes of `protocol/http.ts` (the same schemas the
 * server's routes declare): what is sent is typed by them, what comes back is checked with them.
 * Failures become sentences from the server's error registry.
 */
import type { z } from 'zod';
import {
  accountResponse,
  checkAnswer,
  type CheckOffer,
  errorResponse,
  iceConfig,
  linkList,
  linkPublicInfo,
  linkView,
  type CreateLinkRequest,
  type CredentialsRequest,
  type InfoMacRequest,
  type RenameLinkRequest,
} from '../protocol/http.js';

export type { IceConfig, IceServer, LinkPublicInfo, LinkView } from '../protocol/http.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Sends `body` as JSON; an answer that is not `expected`'s shape is a failure like any other. */
async function request<S extends z.ZodType | undefined>(method: string, path: string, expected: S, body?: unknown): Promise<S extends z.ZodType ? z.output<S> : void> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'offline', 'Could not reach the server. Check your connection and try again.');
  }
  if (res.status === 204) return undefined as never;
  const data: unknown = await res.json().catch(() => ({}));
  if (!res.ok) {
    const error = errorResponse.partial().safeParse(data);
    const said = error.success ? error.data : {};
    throw new ApiError(res.status, said.error ?? 'internal', said.message ?? 'Something went wrong.');
  }
  if (!expected) return undefined as never;
  const parsed = expected.safeParse(data);
  if (!parsed.success) throw new ApiError(res.status, 'internal', 'Something went wrong.');
  return parsed.data as never;
}

const link = (id: string) => `/api/links/${encodeURIComponent(id)}`;

export const api = {
  me: () => request('GET', '/api/me', accountResponse),
  signUp: (username: string, password: string) => request('POST', '/api/signup', accountResponse, { username, password } satisfies CredentialsRequest),
  signIn: (username: string, password: string) => request('POST', '/api/signin', accountResponse, { username, password } satisfies CredentialsRequest),
  signOut: () => request('POST', '/api/signout', undefined),
  links: () => request('GET', '/api/links', linkList),
  createLink: (name?: string, expiresAt?: number) =>
    request('POST', '/api/links', linkView, { ...(name ? { name } : {}), ...(expiresAt ? { expiresAt } : {}) } satisfies CreateLinkRequest),
  renameLink: (id: string, name: string, mac: string) => request('PATCH', link(id), undefined, { name, mac } satisfies RenameLinkRequest),
  setLinkInfoMac: (id: string, mac: string) => request('PUT', `${link(id)}/info-mac`, undefined, { mac } satisfies InfoMacRequest),
  deleteLink: (id: string) => request('DELETE', link(id), undefined),
  linkInfo: (id: string) => request('GET', `${link(id)}/info`, linkPublicInfo),
  /** ICE servers with short-lived TURN credentials, and the transport policy, for this link's call. */
  ice: (id: string) => request('GET', `${link(id)}/ice`, iceConfig),
  /** "Check my connection": this server's ICE servers (TURN credentials valid 10 minutes). */
  checkIce: () => request('GET', '/api/check/ice', iceConfig),
  /** "Check my connection": the server's answer to one path's data-channel offer. */
  checkOffer: (sdp: string) => request('POST', '/api/check/offer', checkAnswer, { sdp } satisfies CheckOffer),
};
