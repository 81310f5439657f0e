/**
 * Each tile tells the SFU how large it is drawn (device pixels), so it can
 * forward a simulcast layer that fits (no 720p for a thumbnail) and nothing for
 * tiles not shown. Reports from all tiles are gathered and sent together,
 * debounced, through CallSession.setViewport (which drops repeats).
 */
import type { CallSession } from '../../client/call.js';

/** Resizing fires many events; the SFU needs the settled sizes. */
const DEBOUNCE_MS = 300;

/** `key` tells a participant's camera tile from its screen tile; the larger one counts. Size 0×0: the tile is gone. */
export type TileSizeReport = (key: string, participantId: string, width: number, height: number) => void;

export function tileSizeReporter(session: CallSession): TileSizeReport {
  const sizes = new Map<string, { participantId: string; width: number; height: number }>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const send = () => {
    const largest = new Map<string, { width: number; height: number }>();
    for (const s of sizes.values()) {
      const had = largest.get(s.participantId);
      if (!had || s.width * s.height > had.width * had.height) largest.set(s.participantId, { width: s.width, height: s.height });
    }
    session.setViewport([...largest].map(([participantId, size]) => ({ participantId, ...size })));
  };
  return (key, participantId, width, height) => {
    const ratio = globalThis.devicePixelRatio || 1;
    if (width === 0 && height === 0) sizes.delete(key);
    else sizes.set(key, { participantId, width: Math.round(width * ratio), height: Math.round(height * ratio) });
    clearTimeout(timer);
    timer = setTimeout(send, DEBOUNCE_MS);
  };
}
