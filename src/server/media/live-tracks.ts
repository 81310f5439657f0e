import type { Track } from 'node-datachannel';

/**
 * node-datachannel 0.33.4 keeps every Track wrapper in a native registry (with a thread-safe
 * function that keeps the event loop alive) until the native track reports closed to a JS
 * onClosed handler. A wrapper garbage-collected before that stays in the registry as a dangling
 * pointer, and cleanup() crashes on it. So every wrapper gets a handler and is held here until
 * the handler has run. For the same reason there must only ever be one wrapper per native
 * track: a track reports closed once, so a second wrapper (pc.addTrack() with an existing mid
 * returns one) could never leave the registry; nor can a wrapper handed out already closed.
 */
const liveTracks = new Set<Track>();

export function holdUntilClosed(track: Track, onClosed?: () => void): void {
  liveTracks.add(track);
  track.onClosed(() => {
    liveTracks.delete(track);
    onClosed?.();
  });
}

/** @internal After nodeDataChannel.cleanup() every wrapper has been released natively. */
export function forgetTracks(): void {
  liveTracks.clear();
}
