/** The HTTP API as the pages use it; failures become sentences from the server's error registry. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
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
  if (res.status === 204) return undefined as T;
  const data = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
  if (!res.ok) throw new ApiError(res.status, data.error ?? 'internal', data.message ?? 'Something went wrong.');
  return data as T;
}

export interface LinkView {
  id: string;
  name: string;
  createdAt: number;
  /** When the link stops working (ms), or null. */
  expiresAt: number | null;
  /** When someone last joined or knocked with it (ms), or null. */
  lastUsedAt: number | null;
  path: string;
}

export interface LinkPublicInfo {
  name: string;
  hostName: string;
  infoMac: string | null;
  isOwner: boolean;
}

export const api = {
  me: () => request<{ username: string }>('GET', '/api/me'),
  signUp: (username: string, password: string) => request<{ username: string }>('POST', '/api/signup', { username, password }),
  signIn: (username: string, password: string) => request<{ username: string }>('POST', '/api/signin', { username, password }),
  signOut: () => request<void>('POST', '/api/signout'),
  links: () => request<{ links: LinkView[] }>('GET', '/api/links'),
  createLink: (name?: string, expiresAt?: number) =>
    request<LinkView>('POST', '/api/links', { ...(name ? { name } : {}), ...(expiresAt ? { expiresAt } : {}) }),
  renameLink: (id: string, name: string, mac: string) => request<void>('PATCH', `/api/links/${encodeURIComponent(id)}`, { name, mac }),
  setLinkInfoMac: (id: string, mac: string) => request<void>('PUT', `/api/links/${encodeURIComponent(id)}/info-mac`, { mac }),
  deleteLink: (id: string) => request<void>('DELETE', `/api/links/${encodeURIComponent(id)}`),
  linkInfo: (id: string) => request<LinkPublicInfo>('GET', `/api/links/${encodeURIComponent(id)}/info`),
  /** ICE servers with short-lived TURN credentials, and the transport policy, for this link's call. */
  ice: (id: string) => request<RTCConfiguration>('GET', `/api/links/${encodeURIComponent(id)}/ice`),
};
