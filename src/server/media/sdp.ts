// SDP munging for the two directions. Line-based on purpose: we only touch the attributes we
// must, and leave ICE/DTLS lines exactly as the browser wrote them.
import type { MediaKind } from './common.js';

export interface CodecInfo {
  /** As in a=rtpmap, e.g. "VP8", "opus". */
  name: string;
  clockRate: number;
  channels?: number;
  fmtp?: string;
}

/**
 * The one codec per kind the SFU forwards. VP8 because the E2EE frame format leaves VP8's payload
 * header in clear (see DESIGN.md "Frames"); opus because every browser has it.
 */
export const SUPPORTED_CODECS: Readonly<Record<MediaKind, { name: string; clockRate: number }>> = {
  audio: { name: 'opus', clockRate: 48000 },
  video: { name: 'VP8', clockRate: 90000 },
};

/** Fixed payload types in our own offers, so one subscriber connection can never see a PT clash. */
export const DOWNSTREAM: Readonly<Record<MediaKind, { payloadType: number; codec: CodecInfo }>> = {
  audio: {
    payloadType: 111,
    codec: { name: 'opus', clockRate: 48000, channels: 2, fmtp: 'minptime=10;useinbandfec=1' },
  },
  video: { payloadType: 96, codec: { name: 'VP8', clockRate: 90000 } },
};

interface Section {
  lines: string[];
}

function split(sdp: string): { session: string[]; sections: Section[] } {
  const lines = sdp.split(/\r?\n/).filter((l) => l.length > 0);
  const session: string[] = [];
  const sections: Section[] = [];
  for (const line of lines) {
    if (line.startsWith('m=')) sections.push({ lines: [line] });
    else if (sections.length === 0) session.push(line);
    else sections[sections.length - 1]!.lines.push(line);
  }
  return { session, sections };
}

function join(session: string[], sections: Section[]): string {
  return [...session, ...sections.flatMap((s) => s.lines)].join('\r\n') + '\r\n';
}

function attr(section: Section, name: string): string | undefined {
  const prefix = `a=${name}:`;
  const line = section.lines.find((l) => l.startsWith(prefix));
  return line?.slice(prefix.length);
}

const DIRECTIONS = ['sendrecv', 'sendonly', 'recvonly', 'inactive'] as const;
type Direction = (typeof DIRECTIONS)[number];

function direction(section: Section): Direction {
  for (const l of section.lines) {
    const d = l.slice(2) as Direction;
    if (l.startsWith('a=') && DIRECTIONS.includes(d)) return d;
  }
  return 'sendrecv';
}

function mline(section: Section): { kind: string; port: number; proto: string; fmts: string[] } {
  const [kind = '', port = '0', proto = '', ...fmts] = section.lines[0]!.slice(2).split(' ');
  return { kind, port: Number(port), proto, fmts };
}

function codecs(section: Section): Map<number, CodecInfo> {
  const out = new Map<number, CodecInfo>();
  for (const l of section.lines) {
    const m = /^a=rtpmap:(\d+) ([^/\s]+)\/(\d+)(?:\/(\d+))?/.exec(l);
    if (!m) continue;
    const info: CodecInfo = { name: m[2]!, clockRate: Number(m[3]) };
    if (m[4]) info.channels = Number(m[4]);
    out.set(Number(m[1]), info);
  }
  for (const l of section.lines) {
    const m = /^a=fmtp:(\d+) (.*)$/.exec(l);
    const c = m && out.get(Number(m[1]));
    if (c) c.fmtp = m[2]!;
  }
  return out;
}

function matches(c: CodecInfo, kind: MediaKind): boolean {
  const want = SUPPORTED_CODECS[kind];
  return c.name.toLowerCase() === want.name.toLowerCase() && c.clockRate === want.clockRate;
}

export interface OfferedMedia {
  mid: string;
  kind: MediaKind;
  /** The browser will send on this m-line with a codec we accepted. */
  sending: boolean;
  payloadType: number;
  codec: CodecInfo;
  /** Primary SSRC declared in the offer; undefined when the browser declared none. */
  ssrc: number | undefined;
}

/**
 * Rewrites a publisher's offer before libdatachannel answers it (its answer mirrors the offer):
 * - one codec per m-line (VP8 / opus) and no RTX: the SFU has no use for either;
 * - no transport-cc: libdatachannel echoes it but never sends the feedback, and Chromium's
 *   send rate then collapses to ~30 kbit/s. Without it Chromium falls back to REMB + receiver
 *   reports, which the PublishTransport sends;
 * - no rid/simulcast: libdatachannel would answer "send" instead of "recv" and Chromium would
 *   send nothing; single-layer until simulcast is implemented;
 * - direction sendonly, so the answer is recvonly (we never send to a publisher), and no
 *   a=msid (the mirrored answer would announce the browser's own stream back to it).
 * An m-line without a codec we forward is answered inactive rather than rejected (port 0): for
 * a rejected m-line the engine hands out an already-closed Track whose wrapper can never be
 * released (see holdUntilClosed).
 */
export function prepareRemoteOffer(offerSdp: string): { sdp: string; media: OfferedMedia[] } {
  const { session, sections } = split(offerSdp);
  const media: OfferedMedia[] = [];
  for (const section of sections) {
    const m = mline(section);
    if (m.kind !== 'audio' && m.kind !== 'video') continue;
    const kind: MediaKind = m.kind;
    const mid = attr(section, 'mid');
    if (mid === undefined) throw new Error('offer has an m-line without a=mid');
    const all = codecs(section);
    const preferred = m.fmts.map(Number).find((p) => {
      const c = all.get(p);
      return c !== undefined && matches(c, kind);
    });
    const pt = preferred ?? Number(m.fmts[0]);
    const dir = direction(section);
    const sending = preferred !== undefined && m.port !== 0 && (dir === 'sendonly' || dir === 'sendrecv');
    const ssrc = primarySsrc(section);
    const keep = (line: string): boolean => {
      const fmtLine = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+|\*)\s/.exec(line);
      if (fmtLine && fmtLine[1] !== String(pt) && fmtLine[1] !== '*') return false;
      if (/^a=rtcp-fb:\S+ transport-cc/.test(line)) return false;
      if (line.startsWith('a=extmap:') && line.includes('transport-wide-cc')) return false;
      if (line.startsWith('a=rid:') || line.startsWith('a=simulcast:')) return false;
      if (line.startsWith('a=ssrc-group:') || line.startsWith('a=msid:')) return false;
      if ((DIRECTIONS as readonly string[]).includes(line.slice(2))) return false;
      const ssrcLine = /^a=ssrc:(\d+)\s/.exec(line);
      if (ssrcLine && Number(ssrcLine[1]) !== ssrc) return false;
      return true;
    };
    section.lines = [
      `m=${m.kind} ${m.port} ${m.proto} ${pt}`,
      ...section.lines.slice(1).filter(keep),
      sending ? 'a=sendonly' : 'a=inactive',
    ];
    media.push({
      mid,
      kind,
      sending,
      payloadType: pt,
      codec: all.get(pt) ?? { name: 'unknown', clockRate: 0 },
      ssrc,
    });
  }
  return { sdp: join(session, sections), media };
}

/** The media SSRC: first of an FID (RTX) or SIM group, else the first a=ssrc. */
function primarySsrc(section: Section): number | undefined {
  for (const l of section.lines) {
    const g = /^a=ssrc-group:(?:FID|SIM) (\d+)/.exec(l);
    if (g) return Number(g[1]);
  }
  const s = /^a=ssrc:(\d+)\s/.exec(section.lines.find((l) => l.startsWith('a=ssrc:')) ?? '');
  return s ? Number(s[1]) : undefined;
}

export interface AnsweredMedia {
  rejected: boolean;
  direction: Direction;
  codecs: Map<number, CodecInfo>;
}

/** Per mid, what a subscriber's answer accepted. */
export function parseAnswer(answerSdp: string): Map<string, AnsweredMedia> {
  const out = new Map<string, AnsweredMedia>();
  for (const section of split(answerSdp).sections) {
    const mid = attr(section, 'mid');
    if (mid === undefined) continue;
    const m = mline(section);
    out.set(mid, { rejected: m.port === 0, direction: direction(section), codecs: codecs(section) });
  }
  return out;
}

/** Payload type the answer assigned to our codec on that m-line, if it kept it. */
export function answeredPayloadType(media: AnsweredMedia, codec: CodecInfo): number | undefined {
  for (const [pt, c] of media.codecs) {
    if (c.name.toLowerCase() === codec.name.toLowerCase() && c.clockRate === codec.clockRate) return pt;
  }
  return undefined;
}
