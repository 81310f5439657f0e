/** Checks at the doors of the media objects: what a caller outside the media layer may pass, and when. */

export function assertNotClosed(closed: boolean, what: string): void {
  if (closed) throw new Error(`${what} is closed`);
}

// RFC 4566 token-char, up to 64 chars (RFC 8830 msid-id): peerId ends up verbatim in a=msid.
const MSID_TOKEN = /^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}$/;

export function assertValidPeerId(peerId: string): void {
  if (typeof peerId !== 'string' || !MSID_TOKEN.test(peerId)) {
    throw new Error('peerId must be 1-64 characters of [A-Za-z0-9] or !#$%&\'*+-.^_`{|}~');
  }
}
