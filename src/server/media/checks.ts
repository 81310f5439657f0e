/**
 * Checks at the doors of the media objects, for callers outside the media layer (as mediasoup
 * does): a bad argument is a TypeError that shows the value, a call on a closed object an
 * InvalidStateError.
 */

/** A method called on a media object that is closed, or not ready for that call. */
export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

export function assertNotClosed(closed: boolean, what: string): void {
  if (closed) throw new InvalidStateError(`${what} is closed`);
}

/**
 * A value as a TypeError shows it: short, on one line. Only values that failed a check get
 * here (an empty string, not an SDP), so nothing secret is shown.
 */
export function shown(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return `an object (${value.constructor?.name ?? 'no prototype'})`;
  let text: string;
  try {
    text = typeof value === 'bigint' ? `${value}n` : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

// RFC 4566 token-char, up to 64 chars (RFC 8830 msid-id): peerId ends up verbatim in a=msid.
const MSID_TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}$/;

export function assertValidPeerId(peerId: string): void {
  if (typeof peerId !== 'string' || !MSID_TOKEN.test(peerId)) {
    throw new TypeError(`peerId must be 1-64 characters of [A-Za-z0-9] or !#$%&'*+-.^_\`{|}~, got ${shown(peerId)}`);
  }
}
