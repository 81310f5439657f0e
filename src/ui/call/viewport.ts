/**
 * Each tile tells the SFU how large it is drawn (device pixels), so it can
 * forward a simulcast layer that fits (no 720p for a thumbnail) and nothing for
 * tiles not shown. Reports from all tiles are gathered and sent together,
 * debounced, through CallSession.setViewport (which drops repeats).
 */
import type { CallSession } from '../../client/call.js';

/** Resizing fires many events; the SFU needs the settled sizes. */
const DEBOUNCE_MS = 300;

/**
 * `key` tells a participant's camera tile from its screen tile; the larger one counts. Size 0×0:
 * the tile is not drawn with video (paused by the video budget, on another page of the grid,
 * gone). Such participants stay in the viewport as 0×0: the SFU forwards video to anyone it has
 * never been told about (a newcomer gets video before its tile reports), so leaving them out
 * would have it send every video the page does not play.
 */
export type TileSizeReport = (key: string, participantId: string, width: number, height: number) => void;

export function tileSizeReporter(session: CallSession): TileSizeReport {
  const sizes = new Map<string, { participantId: string; width: number; height: number }>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const send = () => {
    const largest = new Map<string, { width: number; height: number }>();
    for (const [key, s] of sizes) {
      // Someone who left is not named again.
      if (!session.participants.has(s.participantId)) {
        sizes.delete(key);
        continue;
      }
      const had = largest.get(s.participantId);
      if (!had || s.width * s.height > had.width * had.height) largest.set(s.participantId, { width: s.width, height: s.height });
    }
    session.setViewport([...largest].map(([participantId, size]) => ({ participantId, ...size })));
  };
  return (key, participantId, width, height) => {
    const ratio = globalThis.devicePixelRatio || 1;
    sizes.set(key, { participantId, width: Math.round(width * ratio), height: Math.round(height * ratio) });
    clearTimeout(timer);
    timer = setTimeout(send, DEBOUNCE_MS);
  };
}
