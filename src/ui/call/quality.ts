/**
 * Who is speaking and how good each connection is, from WebRTC statistics.
 * Received audio levels come from `inbound-rtp` audioLevel, which the browser
 * measures on the decoded (decrypted) sound: the SFU forwards no level header.
 */
export type Quality = 'good' | 'fair' | 'poor';

interface Counters {
  packetsReceived: number;
  packetsLost: number;
  framesDecoded: number;
  framesDropped: number;
  /** Seconds spent decoding so far. */
  totalDecodeTime: number;
  at: number;
}

export interface ReceivedSample {
  /** Audio level 0…1 per received track id. */
  levels: Map<string, number>;
  /** Quality per received video track id. */
  quality: Map<string, Quality>;
  /** What each received video costs the page, per video track id (see budget.ts). */
  load: Map<string, VideoLoad>;
}

export interface VideoLoad {
  fps: number;
  droppedPerSecond: number;
  decodeMsPerSecond: number;
}

export class StatsReader {
  private readonly previous = new Map<string, Counters>();

  /** Read a receiving connection's report; compares with the previous call for loss and frame rate. */
  received(report: RTCStatsReport): ReceivedSample {
    const levels = new Map<string, number>();
    const quality = new Map<string, Quality>();
    const load = new Map<string, VideoLoad>();
    report.forEach((s: Record<string, unknown>) => {
      if (s.type !== 'inbound-rtp') return;
      const track = s.trackIdentifier as string | undefined;
      if (!track) return;
      if (s.kind === 'audio') {
        if (typeof s.audioLevel === 'number') levels.set(track, s.audioLevel);
        return;
      }
      const now: Counters = {
        packetsReceived: Number(s.packetsReceived ?? 0),
        packetsLost: Math.max(0, Number(s.packetsLost ?? 0)),
        framesDecoded: Number(s.framesDecoded ?? 0),
        framesDropped: Number(s.framesDropped ?? 0),
        totalDecodeTime: Number(s.totalDecodeTime ?? 0),
        at: Number(s.timestamp ?? performance.now()),
      };
      const before = this.previous.get(track);
      this.previous.set(track, now);
      if (!before) return;
      const received = now.packetsReceived - before.packetsReceived;
      const lost = now.packetsLost - before.packetsLost;
      const seconds = Math.max(0.001, (now.at - before.at) / 1000);
      const fps = (now.framesDecoded - before.framesDecoded) / seconds;
      load.set(track, {
        fps,
        droppedPerSecond: Math.max(0, now.framesDropped - before.framesDropped) / seconds,
        decodeMsPerSecond: (Math.max(0, now.totalDecodeTime - before.totalDecodeTime) * 1000) / seconds,
      });
      if (received + lost === 0) return; // camera off or nothing sent: no verdict
      quality.set(track, rate(lost / (received + lost), fps));
    });
    return { levels, quality, load };
  }
}

/**
 * Whether this page's own camera video suffers for lack of CPU: it sends well under the frame
 * rate the camera gives, and not for lack of bandwidth. The people receiving it see that, so the
 * page decodes less (budget.ts). (An encoder the browser merely adapted for CPU — a smaller
 * picture at full rate, qualityLimitationReason "cpu" — is the browser coping, not a reason.)
 */
export function sendingStarved(report: RTCStatsReport): boolean {
  let cameraFps = 0;
  let sentFps = 0;
  let bandwidth = false;
  report.forEach((s: Record<string, unknown>) => {
    if (s.type === 'media-source' && s.kind === 'video' && typeof s.framesPerSecond === 'number') cameraFps = Math.max(cameraFps, s.framesPerSecond);
    if (s.type !== 'outbound-rtp' || s.kind !== 'video' || s.active === false) return;
    if (s.qualityLimitationReason === 'bandwidth') bandwidth = true;
    if (typeof s.framesPerSecond === 'number') sentFps = Math.max(sentFps, s.framesPerSecond);
  });
  return !bandwidth && cameraFps >= 20 && sentFps > 0 && sentFps < cameraFps * 0.75;
}

/** Our own sending side, from the SFU's receiver reports (loss) and the connection's round-trip time. */
export function sentQuality(report: RTCStatsReport): Quality | undefined {
  let loss: number | undefined;
  let rtt: number | undefined;
  report.forEach((s: Record<string, unknown>) => {
    if (s.type === 'remote-inbound-rtp' && typeof s.fractionLost === 'number') loss = Math.max(loss ?? 0, s.fractionLost);
    if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') rtt = s.currentRoundTripTime;
  });
  if (loss === undefined && rtt === undefined) return undefined;
  if ((loss ?? 0) > 0.08 || (rtt ?? 0) > 0.6) return 'poor';
  if ((loss ?? 0) > 0.02 || (rtt ?? 0) > 0.3) return 'fair';
  return 'good';
}

function rate(loss: number, fps: number): Quality {
  if (loss > 0.08 || fps < 5) return 'poor';
  if (loss > 0.02 || fps < 12) return 'fair';
  return 'good';
}

export const QUALITY_WORDS: Record<Quality, string> = { good: 'good', fair: 'fair', poor: 'poor' };
