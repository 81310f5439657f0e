// SDP munging for the two directions. Line-based on purpose: we only touch the attributes we
// must, and leave ICE/DTLS lines exactly as the browser wrote them.
import type { MediaKind } from './context.js';
import { TRANSPORT_CC_EXTENSION } from './transport-cc.js';

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

export const RID_EXTENSION = 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id';
export const MID_EXTENSION = 'urn:ietf:params:rtp-hdrext:sdes:mid';
export const AUDIO_LEVEL_EXTENSION = 'urn:ietf:params:rtp-hdrext:ssrc-audio-level';
/** Tells a receiver's video jitter buffer its minimum and maximum delay (see playout-delay.ts). */
export const PLAYOUT_DELAY_EXTENSION = 'http://www.webrtc.org/experiments/rtp-hdrext/playout-delay';
/** Its id in our offers to subscribers (one-byte form; nothing else is offered downstream). */
export const PLAYOUT_DELAY_EXTENSION_ID = 6;

/**
 * The SDP without a=candidate and a=end-of-candidates lines: an offer the other side sends no
 * connectivity checks for until it learns our address (from our checks, or from a later offer).
 */
export function withoutCandidates(sdp: string): string {
  return sdp
    .split(/\r?\n/)
    .filter((l) => l.length > 0 && !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates')
    .join('\r\n')
    .concat('\r\n');
}

/**
 * Adds the playout-delay header extension to every video m-line of an offer to a subscriber
 * (libdatachannel has no API for extmaps; it keeps extmaps it did not offer out of its own
 * sending, which is ours anyway).
 */
export function offerPlayoutDelay(offerSdp: string): string {
  const { session, sections } = split(offerSdp);
  for (const section of sections) {
    const m = mline(section);
    if (m.kind !== 'video' || m.port === 0 || section.lines.some((l) => l.includes(PLAYOUT_DELAY_EXTENSION))) continue;
    const at = section.lines.findIndex((l) => l.startsWith('a=rtpmap:'));
    section.lines.splice(at < 0 ? section.lines.length : at, 0, `a=extmap:${PLAYOUT_DELAY_EXTENSION_ID} ${PLAYOUT_DELAY_EXTENSION}`);
  }
  return join(session, sections);
}

export interface OfferedMedia {
  mid: string;
  kind: MediaKind;
  /** The browser will send on this m-line with a codec we accepted. */
  sending: boolean;
  payloadType: number;
  codec: CodecInfo;
  /** Primary SSRC declared in the offer (the first layer's); undefined when the browser declared none. */
  ssrc: number | undefined;
  /**
   * Simulcast layers, smallest first: declared SSRCs (a=ssrc-group:SIM, in group order) and/or
   * rids (a=simulcast:send order). One entry without either for a single-layer stream.
   */
  layers: { ssrc: number | undefined; rid: string | undefined }[];
  /** Header extension ids the SFU reads (0: not negotiated). */
  midExtensionId: number;
  ridExtensionId: number;
  audioLevelExtensionId: number;
  transportCcExtensionId: number;
}

export interface PreparedOffer {
  /**
   * What libdatachannel gets: only one m-line (`engineMid`). With a single m-line the engine
   * hands every RTP/RTCP packet of the connection to that one track; with more it routes only
   * SSRCs declared in SDP, and browsers declare none for rid simulcast. The SFU demultiplexes
   * by SSRC, rid and mid itself.
   */
  sdp: string;
  engineMid: string;
  media: OfferedMedia[];
  /** Builds the answer for the browser (every offered m-line) from the engine's one-m-line answer. */
  completeAnswer(engineAnswer: string): string;
}

/**
 * Rewrites a publisher's offer before libdatachannel answers it (its answer mirrors the offer):
 * - one codec per m-line (VP8 / opus) and no RTX: the SFU has no use for either;
 * - transport-cc kept: libdatachannel echoes it without sending feedback; the PublishTransport
 *   sends it (transport-cc.ts), so the browser's delay-based controller works upstream;
 * - simulcast (rid or SIM-group) is kept track of here and answered "recv" in completeAnswer
 *   (libdatachannel would answer "send", and Chromium would then send nothing);
 * - direction sendonly, so the answer is recvonly (we never send to a publisher), and no
 *   a=msid (the mirrored answer would announce the browser's own stream back to it);
 * - only one m-line goes to the engine (see PreparedOffer.sdp); the others are answered by us
 *   with the engine's transport parameters (they are BUNDLEd on the same transport).
 * An m-line without a codec we forward is answered inactive rather than rejected (port 0): for
 * a rejected m-line the engine hands out an already-closed Track whose wrapper can never be
 * released (see holdUntilClosed).
 */
export function prepareRemoteOffer(offerSdp: string, previousEngineMid?: string): PreparedOffer {
  const { session, sections } = split(offerSdp);
  const media: OfferedMedia[] = [];
  const kept: { section: Section; media: OfferedMedia; port: number }[] = [];
  const rejected = new Map<number, string[]>(); // position in the offer -> answer section
  for (const section of sections) {
    const m = mline(section);
    const mid = attr(section, 'mid');
    if (mid === undefined) throw new Error('offer has an m-line without a=mid');
    if (m.kind !== 'audio' && m.kind !== 'video') {
      // A data channel or anything else: not ours to receive, rejected.
      rejected.set(kept.length + rejected.size, [`m=${m.kind} 0 ${m.proto} ${m.fmts[0] ?? '0'}`, 'c=IN IP4 0.0.0.0', `a=mid:${mid}`]);
      continue;
    }
    const kind: MediaKind = m.kind;
    const all = codecs(section);
    const preferred = m.fmts.map(Number).find((p) => {
      const c = all.get(p);
      return c !== undefined && matches(c, kind);
    });
    const pt = preferred ?? Number(m.fmts[0]);
    const dir = direction(section);
    const sending = preferred !== undefined && m.port !== 0 && (dir === 'sendonly' || dir === 'sendrecv');
    const layers = offeredLayers(section);
    const ssrc = layers[0]?.ssrc ?? primarySsrc(section);
    const extId = (uri: string): number => {
      const line = section.lines.find((l) => l.startsWith('a=extmap:') && l.split(/\s+/)[1] === uri);
      return line ? Number(/^a=extmap:(\d+)/.exec(line)![1]) : 0;
    };
    const declared = new Set(layers.map((l) => l.ssrc).filter((x): x is number => x !== undefined));
    if (declared.size === 0 && ssrc !== undefined) declared.add(ssrc);
    const keep = (line: string): boolean => {
      const fmtLine = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+|\*)\s/.exec(line);
      if (fmtLine && fmtLine[1] !== String(pt) && fmtLine[1] !== '*') return false;
      if (line.startsWith('a=extmap:') && line.includes('repaired-rtp-stream-id')) return false;
      if (line.startsWith('a=rid:') || line.startsWith('a=simulcast:')) return false;
      if (line.startsWith('a=ssrc-group:') || line.startsWith('a=msid:')) return false;
      if ((DIRECTIONS as readonly string[]).includes(line.slice(2))) return false;
      const ssrcLine = /^a=ssrc:(\d+)\s/.exec(line);
      if (ssrcLine && !declared.has(Number(ssrcLine[1]))) return false;
      return true;
    };
    section.lines = [
      `m=${m.kind} ${m.port} ${m.proto} ${pt}`,
      ...section.lines.slice(1).filter(keep),
      sending ? 'a=sendonly' : 'a=inactive',
    ];
    const offered: OfferedMedia = {
      mid,
      kind,
      sending,
      payloadType: pt,
      codec: all.get(pt) ?? { name: 'unknown', clockRate: 0 },
      ssrc,
      layers: layers.length > 0 ? layers : [{ ssrc, rid: undefined }],
      midExtensionId: extId(MID_EXTENSION),
      ridExtensionId: extId(RID_EXTENSION),
      audioLevelExtensionId: kind === 'audio' ? extId(AUDIO_LEVEL_EXTENSION) : 0,
      transportCcExtensionId: extId(TRANSPORT_CC_EXTENSION),
    };
    media.push(offered);
    kept.push({ section, media: offered, port: m.port });
  }
  const live = kept.filter((k) => k.port !== 0);
  const engine =
    live.find((k) => k.media.mid === previousEngineMid) ??
    live.find((k) => k.media.sending && k.media.kind === 'video') ??
    live.find((k) => k.media.sending) ??
    live[0];
  if (!engine) throw new Error('offer has no m-line to answer');
  // Firefox puts its candidates only in the first m-section of the BUNDLE group: the engine's
  // one section needs them (and the ICE credentials) whichever m-line it is.
  const isIce = (l: string) => /^a=(?:candidate:|end-of-candidates|ice-ufrag:|ice-pwd:)/.test(l);
  for (const other of kept) {
    if (other === engine) continue;
    for (const l of other.section.lines) {
      if (isIce(l) && !engine.section.lines.includes(l) && !(l.startsWith('a=ice-') && engine.section.lines.some((e) => e.startsWith(l.slice(0, 10))))) {
        engine.section.lines.splice(engine.section.lines.length - 1, 0, l);
      }
    }
  }
  const engineSession = session.map((l) => (l.startsWith('a=group:BUNDLE') ? `a=group:BUNDLE ${engine.media.mid}` : l));
  const sdp = join(engineSession, [engine.section]);

  const completeAnswer = (engineAnswer: string): string => {
    const answer = split(engineAnswer);
    const engineSection = answer.sections[0];
    if (!engineSection) throw new Error('media engine produced no answer section');
    const is = (re: RegExp) => (l: string) => re.test(l);
    // Shaped like libdatachannel's own sections (Firefox accepts nothing else): c=, mid,
    // extmaps, direction, rtcp, codecs, then DTLS/ICE; candidates only in the first section.
    const connection = engineSection.lines.filter(is(/^c=/));
    const rtcp = engineSection.lines.filter(is(/^a=(?:rtcp:|rtcp-mux$)/));
    const iceDtls = engineSection.lines.filter(is(/^a=(?:setup:|ice-ufrag:|ice-pwd:|fingerprint:)/));
    const candidates = engineSection.lines.filter(is(/^a=(?:candidate:|end-of-candidates)/));
    const port = mline(engineSection).port;
    const out: Section[] = [];
    for (const k of kept) {
      while (rejected.has(out.length)) out.push({ lines: rejected.get(out.length)! });
      const m = k.media;
      const first = out.length === 0 || out.every((o) => mline(o).port === 0);
      if (k === engine) {
        const lines = engineSection.lines.filter((l) => first || !is(/^a=(?:candidate:|end-of-candidates)/)(l));
        if (first) for (const c of candidates) if (!lines.includes(c)) lines.push(c);
        out.push({ lines: [...lines, ...simulcastRecv(m)] });
        continue;
      }
      if (k.port === 0) {
        out.push({ lines: [`m=${m.kind} 0 UDP/TLS/RTP/SAVPF ${m.payloadType}`, 'c=IN IP4 0.0.0.0', `a=mid:${m.mid}`, 'a=inactive'] });
        continue;
      }
      // The offered section's own codec and extension lines, as munged above, answered recvonly;
      // an extension's direction is the offerer's, so it flips.
      const own = (re: RegExp) => k.section.lines.filter(is(re));
      const extmaps = own(/^a=extmap:/).map((l) =>
        l.replace(/^(a=extmap:\d+)\/(sendonly|recvonly)/, (_, head: string, dir: string) => `${head}/${dir === 'sendonly' ? 'recvonly' : 'sendonly'}`),
      );
      out.push({
        lines: [
          `m=${m.kind} ${port} UDP/TLS/RTP/SAVPF ${m.payloadType}`,
          ...connection,
          `a=mid:${m.mid}`,
          ...extmaps,
          m.sending ? 'a=recvonly' : 'a=inactive',
          ...own(/^a=extmap-allow-mixed$/),
          ...rtcp,
          ...own(/^a=(?:rtpmap|fmtp|rtcp-fb|rtcp-rsize)/),
          ...iceDtls,
          ...(first ? candidates : []),
          ...simulcastRecv(m),
        ],
      });
    }
    while (rejected.has(out.length)) out.push({ lines: rejected.get(out.length)! });
    const bundle = `a=group:BUNDLE ${live.map((k) => k.media.mid).join(' ')}`;
    const answerSession = answer.session
      .filter((l) => !l.startsWith('a=group:LS'))
      .map((l) => (l.startsWith('a=group:BUNDLE') ? bundle : l));
    return join(answerSession, out);
  };

  return { sdp, engineMid: engine.media.mid, media, completeAnswer };
}

/** The answer's side of rid simulcast: every offered rid accepted as "recv", in the offered order. */
function simulcastRecv(m: OfferedMedia): string[] {
  const rids = m.layers.map((l) => l.rid).filter((r): r is string => r !== undefined);
  if (rids.length === 0 || !m.sending) return [];
  return [...rids.map((r) => `a=rid:${r} recv`), `a=simulcast:recv ${rids.join(';')}`];
}

/** Layers smallest first: a=simulcast:send rids (with a=ssrc-group:SIM SSRCs if also declared), or a SIM group alone. */
function offeredLayers(section: Section): { ssrc: number | undefined; rid: string | undefined }[] {
  const simGroup = /^a=ssrc-group:SIM ((?:\d+ ?)+)$/.exec(section.lines.find((l) => l.startsWith('a=ssrc-group:SIM ')) ?? '');
  const simSsrcs = simGroup ? simGroup[1]!.trim().split(/\s+/).map(Number) : [];
  const simulcast = attr(section, 'simulcast');
  let rids: string[] = [];
  if (simulcast) {
    // "send q;h;f" (alternatives after a comma and "~" paused markers are ignored).
    const m = /(?:^|\s)send\s+(\S+)/.exec(simulcast);
    if (m) rids = m[1]!.split(';').map((r) => r.split(',')[0]!.replace(/^~/, '')).filter((r) => r.length > 0);
  } else {
    rids = section.lines
      .map((l) => /^a=rid:(\S+) send\b/.exec(l)?.[1])
      .filter((r): r is string => r !== undefined);
  }
  const n = Math.max(rids.length, simSsrcs.length);
  const out: { ssrc: number | undefined; rid: string | undefined }[] = [];
  for (let i = 0; i < n; i++) out.push({ ssrc: simSsrcs[i], rid: rids[i] });
  return out;
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
  /** Header extension ids the answer kept, by URI. */
  extensions: Map<string, number>;
}

/** Per mid, what a subscriber's answer accepted. */
export function parseAnswer(answerSdp: string): Map<string, AnsweredMedia> {
  const out = new Map<string, AnsweredMedia>();
  for (const section of split(answerSdp).sections) {
    const mid = attr(section, 'mid');
    if (mid === undefined) continue;
    const m = mline(section);
    const extensions = new Map<string, number>();
    for (const l of section.lines) {
      const e = /^a=extmap:(\d+)(?:\/\w+)? (\S+)/.exec(l);
      if (e) extensions.set(e[2]!, Number(e[1]));
    }
    out.set(mid, { rejected: m.port === 0, direction: direction(section), codecs: codecs(section), extensions });
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
