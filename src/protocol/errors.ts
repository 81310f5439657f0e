/**
 * The one registry of error codes. Every refusal the server makes — an HTTP
 * status, a typed WebSocket `error`, or a `closed` notice that ends a
 * participant's time in a call — names one of these codes. docs/PROTOCOL.md
 * has one row per code; test/protocol.test.ts fails if they disagree.
 */
export const ERRORS = {
  bad_request: { status: 400, message: 'The request was not understood.' },
  /** An HTTP path that names nothing (an unknown API route or page). */
  not_found: { status: 404, message: 'There is nothing at this address.' },
  bad_message: { status: 400, message: 'That message was not understood.' },
  message_too_large: { status: 413, message: 'That message is too large.' },
  unknown_type: { status: 400, message: 'That kind of message is not known.' },
  invalid_name: {
    status: 400,
    message: 'Names must be 1 to 64 characters long and must not contain control characters.',
  },
  invalid_username: {
    status: 400,
    message: 'Usernames are 3 to 32 letters, digits, dots, dashes or underscores.',
  },
  weak_password: { status: 400, message: 'Passwords must be at least 8 characters long.' },
  username_taken: { status: 409, message: 'That username is already taken.' },
  bad_credentials: { status: 401, message: 'That username and password do not match.' },
  not_signed_in: { status: 401, message: 'Please sign in first.' },
  rate_limited: { status: 429, message: 'Too many attempts. Please wait a moment and try again.' },
  too_slow: { status: 408, message: 'Your connection stopped taking messages from the call, so it was closed. Reconnecting…' },
  too_many_links: {
    status: 409,
    message: 'You have as many call links as one account may keep. Delete links you no longer need, then try again.',
  },
  link_not_found: { status: 404, message: 'This call link does not exist. Check that it was copied completely.' },
  link_deleted: { status: 410, message: 'This call link was deleted by its host. Ask them for a new one.' },
  link_expired: { status: 410, message: 'This call link has expired. Ask the host for a new one.' },
  not_allowed: { status: 403, message: 'You are not allowed to do that in this call.' },
  not_in_call: { status: 409, message: 'You are not in a call yet.' },
  already_joined: { status: 409, message: 'You already asked to join this call.' },
  participant_not_found: { status: 404, message: 'That person is no longer here.' },
  declined: { status: 403, message: 'The host declined your request to join.' },
  removed: { status: 403, message: 'The host removed you from the call.' },
  call_ended: { status: 410, message: 'The host ended the call.' },
  call_full: { status: 409, message: 'This call is full.' },
  host_absent: {
    status: 408,
    message: 'The host did not arrive in time. Try the link again later.',
  },
  no_answer: { status: 408, message: 'Nobody answered your request to join. Try again later.' },
  too_many_connections: {
    status: 429,
    message: 'Too many connections from your network. Close other call tabs, or try again in a moment.',
  },
  lobby_full: { status: 429, message: 'Too many people are waiting to join this call. Try again in a moment.' },
  call_locked: {
    status: 423,
    message: 'This call is locked: the host is not letting anyone else in right now. Ask them to unlock it, then join again.',
  },
  commit_conflict: {
    status: 409,
    message: 'Someone else changed the call at the same moment. Trying again.',
  },
  key_refused: {
    status: 403,
    message: 'The keys for this call could not be verified, so you were not let in. Someone may be tampering with the connection.',
  },
  left: { status: 200, message: 'You left the call.' },
  media_failed: { status: 500, message: "The call's audio and video connection failed. Join again from the link." },
  resume_failed: {
    status: 410,
    message: 'We could not bring you back into the call: it has ended or you were away too long. Join again from the link.',
  },
  server_shutdown: { status: 503, message: 'The server is restarting. Please join again in a moment.' },
  internal: { status: 500, message: 'Something went wrong on the server.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

export function errorMessage(code: ErrorCode): string {
  return ERRORS[code].message;
}

/** WebSocket close code for a notice that ends the connection: 4000 + HTTP status. */
export function closeCodeFor(code: ErrorCode): number {
  return 4000 + ERRORS[code].status;
}

/** A refusal with a code from the registry; thrown by rooms and HTTP handlers alike. */
export class LinkcallError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, detail?: string) {
    super(detail ? `${ERRORS[code].message} (${detail})` : ERRORS[code].message);
    this.code = code;
    this.name = 'LinkcallError';
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
}
