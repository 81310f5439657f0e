// What the packet path counts: numbers only, summed per call and per process for /metrics (see sfu/).

/** Failures on the packet path are counted, not logged: one bad subscriber must not flood the logs. */
export interface MediaCounters {
  rtpIn: number;
  rtpForwarded: number;
  /** RTX, padding on unknown SSRCs, other payload types: never forwarded. */
  rtpDropped: number;
  /** RTP bytes (headers included) received from publishers and sent to subscribers. */
  rtpBytesIn: number;
  rtpBytesForwarded: number;
  /** Packets publishers sent that never arrived (sequence-number gaps, as in receiver reports). */
  rtpLost: number;
  rtcpIn: number;
  keyFrameRequestsSent: number;
  /** PLIs/FIRs swallowed by the per-producer rate limit (coalesced into the next one). */
  keyFrameRequestsCoalesced: number;
  nackRetransmits: number;
  /** Key frames asked of publishers because a subscriber NACKed a packet too old to resend (retransmission.ts). */
  keyFramesForUnrepairedLoss: number;
  /** NACKs the SFU sent to publishers for gaps in what they sent. */
  nacksSent: number;
  /** Bytes of bandwidth probes sent to subscribers (see probing.ts). */
  probeBytes: number;
  sendErrors: number;
  rtcpParseErrors: number;
  /** Event listeners (the call's code, outside the media layer) that threw: caught, the rest ran. */
  listenerErrors: number;
}

export function newCounters(): MediaCounters {
  return {
    rtpIn: 0,
    rtpForwarded: 0,
    rtpDropped: 0,
    rtpBytesIn: 0,
    rtpBytesForwarded: 0,
    rtpLost: 0,
    rtcpIn: 0,
    keyFrameRequestsSent: 0,
    keyFrameRequestsCoalesced: 0,
    nackRetransmits: 0,
    keyFramesForUnrepairedLoss: 0,
    nacksSent: 0,
    probeBytes: 0,
    sendErrors: 0,
    rtcpParseErrors: 0,
    listenerErrors: 0,
  };
}

/** Adds `from` into `into`, counter by counter (a worker process reports its counters as numbers by name). */
export function addCounters(into: MediaCounters, from: Readonly<Partial<Record<keyof MediaCounters, number>>>): void {
  for (const key of Object.keys(into) as (keyof MediaCounters)[]) into[key] += from[key] ?? 0;
}
