/**
 * A synthetic camera that measures glass-to-glass delay, for pages in the network lab.
 *
 * `CLOCK_CAMERA` is an init script: getUserMedia's video becomes a 640×480 canvas track
 * (audio still comes from Chromium's fake microphone). Every ~33 ms the canvas draws the time
 * (low 32 bits of epoch milliseconds, plus an 8-bit check) as an 8×5 grid of black and white
 * blocks over its top two thirds, big enough to read back from a 160×120 simulcast layer, and a
 * moving scene below so the encoder has motion to code. On the receiving side, every remote
 * <video> frame the page presents (requestVideoFrameCallback) is scaled to 64×40 pixels and
 * the grid read from the blocks' centres; sent time against expected display time is the
 * glass-to-glass delay (both pages share the machine's clock). It also records every
 * RTCPeerConnection so `LAB_STATS` can read their stats.
 *
 * Plain JavaScript text: a transpiled function would carry helpers the page does not have.
 */
export const CLOCK_CAMERA = `(() => {
  const W = 640, H = 480, COLS = 8, ROWS = 5, CODE_H = 320;
  const now = () => performance.timeOrigin + performance.now();
  const localIds = new Set();
  let source = null;
  function check(v) { return (((v >>> 24) ^ (v >>> 16) ^ (v >>> 8) ^ v) & 0xff) ^ 0x5a; }
  function start() {
    const canvas = document.createElement('canvas');
    canvas.width = W; canvas.height = H;
    const ctx = canvas.getContext('2d');
    let n = 0;
    const draw = () => {
      const t = Math.round(now());
      const low = t % 4294967296;
      const bits = [];
      for (let i = 31; i >= 0; i--) bits.push(Math.floor(low / 2 ** i) % 2);
      const c = check(low >>> 0);
      for (let i = 7; i >= 0; i--) bits.push((c >> i) & 1);
      const bw = W / COLS, bh = CODE_H / ROWS;
      for (let i = 0; i < bits.length; i++) {
        ctx.fillStyle = bits[i] ? '#fff' : '#000';
        ctx.fillRect((i % COLS) * bw, Math.floor(i / COLS) * bh, bw, bh);
      }
      n++;
      const g = ctx.createLinearGradient(0, CODE_H, W, H);
      g.addColorStop(0, 'hsl(' + (n * 3) % 360 + ',70%,45%)');
      g.addColorStop(1, 'hsl(' + (n * 3 + 180) % 360 + ',70%,45%)');
      ctx.fillStyle = g;
      ctx.fillRect(0, CODE_H, W, H - CODE_H);
      for (let k = 0; k < 12; k++) {
        const x = (n * (4 + k) + k * 97) % (W + 80) - 40;
        const y = CODE_H + 20 + ((k * 53 + n * (k % 3 + 1)) % (H - CODE_H - 40));
        ctx.fillStyle = 'hsl(' + (k * 30) + ',80%,' + (30 + (k * 7) % 50) + '%)';
        ctx.beginPath(); ctx.arc(x, y, 14 + (k % 4) * 6, 0, Math.PI * 2); ctx.fill();
      }
    };
    draw();
    setInterval(draw, 1000 / 30);
    // Without a frame rate the track gets a frame each time the canvas is drawn.
    const track = canvas.captureStream().getVideoTracks()[0];
    track.contentHint = 'motion';
    return track;
  }
  function videoTrack() {
    if (!source) source = start();
    const t = source.clone();
    localIds.add(t.id);
    return t;
  }
  const getUserMedia = MediaDevices.prototype.getUserMedia;
  MediaDevices.prototype.getUserMedia = async function (constraints) {
    const c = constraints || {};
    const tracks = [];
    if (c.audio) tracks.push(...(await getUserMedia.call(this, { audio: c.audio })).getAudioTracks());
    if (c.video) tracks.push(videoTrack());
    return new MediaStream(tracks);
  };

  window.__pcs = [];
  const NativePc = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePc {
    constructor(config) { super(config); window.__pcs.push(this); }
  };

  // Receiving: [sent, shown] epoch ms for every remote frame presented whose code reads back.
  window.__g2g = [];
  window.__g2gUnreadable = 0;
  const reader = document.createElement('canvas');
  reader.width = COLS * 8; reader.height = ROWS * 8;
  const rctx = reader.getContext('2d', { willReadFrequently: true });
  function read(v, meta) {
    const s = v.srcObject;
    const track = s && s.getVideoTracks && s.getVideoTracks()[0];
    if (!track || localIds.has(track.id) || !v.videoWidth) return;
    rctx.drawImage(v, 0, 0, v.videoWidth, v.videoHeight * CODE_H / H, 0, 0, reader.width, reader.height);
    const px = rctx.getImageData(0, 0, reader.width, reader.height).data;
    let low = 0, c = 0;
    for (let i = 0; i < 40; i++) {
      const x = (i % COLS) * 8 + 4, y = Math.floor(i / COLS) * 8 + 4, o = (y * reader.width + x) * 4;
      const bit = (px[o] * 0.299 + px[o + 1] * 0.587 + px[o + 2] * 0.114) > 128 ? 1 : 0;
      if (i < 32) low = low * 2 + bit; else c = c * 2 + bit;
    }
    if (check(low >>> 0) !== c) { window.__g2gUnreadable++; return; }
    const shown = performance.timeOrigin + meta.expectedDisplayTime;
    // The full send time: the latest time with these low 32 bits, not after it was shown.
    const sent = shown - ((((Math.round(shown) % 4294967296) - low) % 4294967296 + 4294967296) % 4294967296);
    window.__g2g.push([sent, shown, v.videoWidth, v.videoHeight]);
  }
  const watched = new WeakSet();
  function watch(v) {
    if (watched.has(v)) return;
    watched.add(v);
    const cb = (_, meta) => { try { read(v, meta); } catch {} v.requestVideoFrameCallback(cb); };
    v.requestVideoFrameCallback(cb);
  }
  new MutationObserver(() => document.querySelectorAll('video').forEach(watch))
    .observe(document, { subtree: true, childList: true });
})();`;

/**
 * Page function (pass as a string to page.evaluate): every open connection's inbound audio and
 * video, outbound video and selected candidate pair, as plain numbers.
 */
export const LAB_STATS = `(async () => {
  const out = [];
  // Whose tile shows a track (its figure's label is the person's name): a group call's streams by sender.
  const fromOf = (trackId) => {
    const v = [...document.querySelectorAll('video')].find((e) => e.srcObject && e.srcObject.getVideoTracks && e.srcObject.getVideoTracks().some((t) => t.id === trackId));
    const f = v && v.closest('figure');
    return (f && f.getAttribute('aria-label')) || '';
  };
  for (const [i, pc] of window.__pcs.entries()) {
    if (pc.connectionState === 'closed') continue;
    const report = await pc.getStats();
    report.forEach((s) => {
      const id = i + ':' + s.id;
      if (s.type === 'inbound-rtp') out.push({ id, type: 'in', kind: s.kind, framesDecoded: s.framesDecoded || 0, width: s.frameWidth || 0, height: s.frameHeight || 0,
        freezeCount: s.freezeCount || 0, freezeSeconds: s.totalFreezesDuration || 0, concealed: s.concealedSamples || 0, samples: s.totalSamplesReceived || 0,
        packetsLost: s.packetsLost || 0, packetsReceived: s.packetsReceived || 0, bytes: s.bytesReceived || 0, nacks: s.nackCount || 0, plis: s.pliCount || 0,
        jitterBufferDelay: s.jitterBufferDelay || 0, jitterBufferEmitted: s.jitterBufferEmittedCount || 0, from: s.kind === 'video' ? fromOf(s.trackIdentifier) : '' });
      else if (s.type === 'outbound-rtp' && s.kind === 'video') out.push({ id, type: 'out', kind: 'video', bytes: s.bytesSent || 0, width: s.frameWidth || 0, height: s.frameHeight || 0,
        limitation: s.qualityLimitationReason || '', retransmittedBytes: s.retransmittedBytesSent || 0 });
      else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') out.push({ id, type: 'pair', rtt: s.currentRoundTripTime || 0, outgoing: s.availableOutgoingBitrate || 0 });
    });
  }
  // A page with Chromium's own fake camera (a group call) reads no delay.
  const g2g = window.__g2g ? window.__g2g.splice(0) : [];
  return { stats: out, g2g, unreadable: window.__g2gUnreadable || 0 };
})()`;

export interface InboundStats {
  id: string;
  type: 'in';
  kind: 'audio' | 'video';
  framesDecoded: number;
  width: number;
  height: number;
  freezeCount: number;
  freezeSeconds: number;
  concealed: number;
  samples: number;
  packetsLost: number;
  packetsReceived: number;
  bytes: number;
  nacks: number;
  plis: number;
  jitterBufferDelay: number;
  jitterBufferEmitted: number;
  /** The name on the tile that shows this video ('' for audio, or not shown). */
  from: string;
}
export interface OutboundStats {
  id: string;
  type: 'out';
  kind: 'video';
  bytes: number;
  width: number;
  height: number;
  limitation: string;
  retransmittedBytes: number;
}
export interface PairStats {
  id: string;
  type: 'pair';
  rtt: number;
  outgoing: number;
}
export interface LabStats {
  stats: (InboundStats | OutboundStats | PairStats)[];
  /** [sent, shown, width, height] per remote frame presented since the last call. */
  g2g: [number, number, number, number][];
  unreadable: number;
}
