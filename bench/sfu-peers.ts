// The other side of bench/sfu.ts, in its own process so the SFU's CPU is measured alone:
// node-datachannel publishers that send three simulcast layers of VP8-shaped RTP (declared
// SSRCs, a=ssrc-group:SIM, as docs/MEDIA.md describes for bots) and answer PLIs with key frames,
// and subscribers that count what arrives per track (loss from sequence numbers).
import nodeDataChannel, { type PeerConnection, type Track } from 'node-datachannel';

type FromSfu =
  | { type: 'startPublisher'; id: string }
  | { type: 'publishAnswer'; id: string; sdp: string }
  | { type: 'startSubscriber'; id: string }
  | { type: 'subscribeOffer'; id: string; sdp: string }
  | { type: 'window'; action: 'start' | 'stop' }
  | { type: 'exit' };

const send = (m: unknown): void => void process.send!(m);

/** Per layer: frames per second, packets per frame, bytes per packet (f ≈ 1.3 Mbit/s at 180 pkt/s). */
export const LAYERS = [
  { fps: 30, packetsPerFrame: 1, bytes: 500 },
  { fps: 30, packetsPerFrame: 2, bytes: 800 },
  { fps: 30, packetsPerFrame: 6, bytes: 1000 },
];

interface Publisher {
  pc: PeerConnection;
  track?: Track;
  ssrcs: number[];
  seqs: number[];
  pictureIds: number[];
  tl0s: number[];
  keyFrameWanted: boolean[];
  timer?: NodeJS.Timeout;
}

const publishers = new Map<string, Publisher>();
const subscribers = new Map<string, { pc: PeerConnection; tracks: Track[] }>();
/** Per received SSRC: packets and sequence range inside the measurement window. */
const counts = new Map<number, { first: number; last: number; received: number }>();
let counting = false;
let received = 0;

function gathered(pc: PeerConnection): Promise<void> {
  return new Promise((resolve) => {
    const poll = setInterval(() => {
      if (pc.gatheringState() === 'complete') {
        clearInterval(poll);
        resolve();
      }
    }, 5);
  });
}

async function startPublisher(id: string): Promise<void> {
  const pc = new nodeDataChannel.PeerConnection(`pub-${id}`, { iceServers: [], bindAddress: '127.0.0.1', disableAutoNegotiation: true });
  const ssrcs = LAYERS.map((_, i) => 0x10000000 + publishers.size * 16 + i + 1);
  const video = new nodeDataChannel.Video('0', 'SendOnly');
  video.addVP8Codec(96);
  for (const ssrc of ssrcs) video.addSSRC(ssrc, `bench-${id}`, `bench-${id}`, `video-${id}`);
  const pub: Publisher = {
    pc,
    ssrcs,
    seqs: LAYERS.map(() => 1000),
    pictureIds: LAYERS.map(() => 0),
    tl0s: LAYERS.map(() => 0),
    keyFrameWanted: LAYERS.map(() => true),
  };
  publishers.set(id, pub);
  const track = pc.addTrack(video);
  pub.track = track;
  track.onMessage((buf) => {
    // PLI (PSFB, FMT 1) for one of our SSRCs: next frame of that layer is a key frame.
    if (buf.length >= 12 && buf[1] === 206 && (buf[0]! & 0x1f) === 1) {
      const i = ssrcs.indexOf(buf.readUInt32BE(8));
      if (i >= 0) pub.keyFrameWanted[i] = true;
    }
  });
  track.onOpen(() => startSending(pub));
  track.onClosed(() => {});
  pc.setLocalDescription('offer');
  await gathered(pc);
  // Declared simulcast: the SIM group lists the layers smallest first.
  const sdp = pc.localDescription()!.sdp.replace(/a=mid:0\r\n/, `a=mid:0\r\na=ssrc-group:SIM ${ssrcs.join(' ')}\r\n`);
  send({ type: 'publish', id, sdp });
}

function startSending(pub: Publisher): void {
  const start = performance.now();
  const frameMs = 1000 / LAYERS[2]!.fps;
  let frame = 0;
  const payloads = LAYERS.map((l) => Buffer.alloc(l.bytes, 0x55));
  pub.timer = setInterval(() => {
    const due = Math.floor((performance.now() - start) / frameMs);
    while (frame < due) {
      frame++;
      const ts = (frame * 3000) >>> 0;
      for (let l = 0; l < LAYERS.length; l++) {
        const layer = LAYERS[l]!;
        const key = pub.keyFrameWanted[l]! || frame % 120 === 0;
        pub.keyFrameWanted[l] = false;
        pub.pictureIds[l] = (pub.pictureIds[l]! + 1) & 0x7fff;
        if (key) pub.tl0s[l] = (pub.tl0s[l]! + 1) & 0xff;
        for (let p = 0; p < layer.packetsPerFrame; p++) {
          const b = payloads[l]!;
          b[0] = 0x80;
          b[1] = (p === layer.packetsPerFrame - 1 ? 0x80 : 0) | 96;
          b.writeUInt16BE(pub.seqs[l]!, 2);
          pub.seqs[l] = (pub.seqs[l]! + 1) & 0xffff;
          b.writeUInt32BE(ts, 4);
          b.writeUInt32BE(pub.ssrcs[l]!, 8);
          // VP8 descriptor: X, S on the first packet, PictureID (15 bit), TL0PICIDX.
          b[12] = 0x80 | (p === 0 ? 0x10 : 0);
          b[13] = 0xc0;
          b.writeUInt16BE(0x8000 | pub.pictureIds[l]!, 14);
          b[16] = pub.tl0s[l]!;
          b[17] = key && p === 0 ? 0x00 : 0x01; // VP8 P bit
          try {
            pub.track!.sendMessageBinary(b);
          } catch {
            // closed
          }
        }
      }
    }
  }, 5);
}

function startSubscriber(id: string): void {
  const pc = new nodeDataChannel.PeerConnection(`sub-${id}`, { iceServers: [], bindAddress: '127.0.0.1' });
  const sub = { pc, tracks: [] as Track[] };
  subscribers.set(id, sub);
  pc.onTrack((track) => {
    sub.tracks.push(track);
    track.onClosed(() => {});
    track.onMessage((buf) => {
      received++;
      if (!counting || buf.length < 12 || (buf[1]! >= 192 && buf[1]! <= 223)) return;
      const ssrc = buf.readUInt32BE(8);
      const seq = (buf[2]! << 8) | buf[3]!;
      let c = counts.get(ssrc);
      if (!c) counts.set(ssrc, (c = { first: seq, last: seq, received: 0 }));
      c.received++;
      const ahead = (seq - c.last) & 0xffff;
      if (ahead > 0 && ahead < 0x8000) c.last = seq;
    });
  });
}

process.on('message', (m: FromSfu) => {
  switch (m.type) {
    case 'startPublisher':
      void startPublisher(m.id);
      break;
    case 'publishAnswer':
      publishers.get(m.id)!.pc.setRemoteDescription(m.sdp, 'answer');
      break;
    case 'startSubscriber':
      startSubscriber(m.id);
      send({ type: 'subscriberReady', id: m.id });
      break;
    case 'subscribeOffer': {
      const pc = subscribers.get(m.id)!.pc;
      pc.setRemoteDescription(m.sdp, 'offer');
      void gathered(pc).then(() => send({ type: 'subscribeAnswer', id: m.id, sdp: pc.localDescription()!.sdp }));
      break;
    }
    case 'window':
      if (m.action === 'start') {
        counts.clear();
        counting = true;
        send({ type: 'windowStarted', cpu: process.cpuUsage() });
      } else {
        counting = false;
        let expected = 0;
        let got = 0;
        for (const c of counts.values()) {
          expected += ((c.last - c.first) & 0xffff) + 1;
          got += c.received;
        }
        send({ type: 'windowResult', expected, received: got, streams: counts.size, cpu: process.cpuUsage() });
      }
      break;
    case 'exit':
      for (const p of publishers.values()) {
        clearInterval(p.timer);
        p.pc.close();
      }
      for (const s of subscribers.values()) s.pc.close();
      setTimeout(() => {
        nodeDataChannel.cleanup();
        process.exit(0);
      }, 200);
      break;
  }
});
send({ type: 'ready', received });
