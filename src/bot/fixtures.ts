/**
 * The pre-encoded media bots send (made once by scripts/make-vp8-fixture.sh, committed under
 * test/fixtures/): three VP8 layers in IVF files and 20 ms Opus packets in an Ogg file.
 * Loaded once per process and shared by every bot; nothing is decoded.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FIXTURE_DIR = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));

/** Simulcast layers, lowest first (the rid each would carry: q, h, f). */
export type LayerName = 'q' | 'h' | 'f';
export const LAYERS: readonly LayerName[] = ['q', 'h', 'f'];

export interface VideoFixture {
  layer: LayerName;
  width: number;
  height: number;
  fps: number;
  /** One displayable VP8 frame each (no invisible alt-ref frames). */
  frames: Buffer[];
  keyFrame: boolean[];
}

export interface AudioFixture {
  /** Opus packets of 20 ms each. */
  packets: Buffer[];
}

/** An Opus packet of 20 ms of silence (TOC 0xf8: CELT fullband 20 ms, one frame). */
export const OPUS_SILENCE = Buffer.from([0xf8, 0xff, 0xfe]);

/** RFC 6386 §9.1: bit 0 of the frame tag is 0 on key frames. */
export function isVp8KeyFrame(frame: Uint8Array): boolean {
  return frame.length > 0 && (frame[0]! & 1) === 0;
}

export function parseIvf(file: Buffer, layer: LayerName): VideoFixture {
  if (file.toString('latin1', 0, 4) !== 'DKIF' || file.toString('latin1', 8, 12) !== 'VP80') {
    throw new TypeError(`not a VP8 IVF file (layer ${layer})`);
  }
  const headerBytes = file.readUInt16LE(6);
  const width = file.readUInt16LE(12);
  const height = file.readUInt16LE(14);
  const rate = file.readUInt32LE(16);
  const scale = file.readUInt32LE(20);
  const frames: Buffer[] = [];
  for (let at = headerBytes; at + 12 <= file.length; ) {
    const size = file.readUInt32LE(at);
    frames.push(file.subarray(at + 12, at + 12 + size));
    at += 12 + size;
  }
  if (frames.length === 0 || !isVp8KeyFrame(frames[0]!)) throw new TypeError(`IVF layer ${layer} must start with a key frame`);
  return { layer, width, height, fps: Math.round(rate / (scale || 1)), frames, keyFrame: frames.map(isVp8KeyFrame) };
}

/** The packets of the first logical stream of an Ogg file, without the two Opus header packets. */
export function parseOggOpus(file: Buffer): AudioFixture {
  const packets: Buffer[] = [];
  let pending: Buffer[] = [];
  for (let at = 0; at + 27 <= file.length; ) {
    if (file.toString('latin1', at, at + 4) !== 'OggS') throw new TypeError('not an Ogg file');
    const segments = file[at + 26]!;
    const table = file.subarray(at + 27, at + 27 + segments);
    let data = at + 27 + segments;
    for (const lacing of table) {
      pending.push(file.subarray(data, data + lacing));
      data += lacing;
      if (lacing < 255) {
        packets.push(Buffer.concat(pending));
        pending = [];
      }
    }
    at = data;
  }
  const audio = packets.filter((p) => !p.subarray(0, 8).equals(Buffer.from('OpusHead')) && !p.subarray(0, 8).equals(Buffer.from('OpusTags')));
  if (audio.length === 0) throw new TypeError('no Opus packets in the Ogg file');
  return { packets: audio };
}

export interface Fixtures {
  video: Record<LayerName, VideoFixture>;
  audio: AudioFixture;
}

let loaded: Fixtures | undefined;

/** Reads the fixture files once per process. */
export function loadFixtures(dir = FIXTURE_DIR): Fixtures {
  if (loaded && dir === FIXTURE_DIR) return loaded;
  const video = Object.fromEntries(LAYERS.map((l) => [l, parseIvf(readFileSync(`${dir}/vp8-${l}.ivf`), l)])) as Record<LayerName, VideoFixture>;
  const fixtures = { video, audio: parseOggOpus(readFileSync(`${dir}/opus-tone.opus`)) };
  if (dir === FIXTURE_DIR) loaded = fixtures;
  return fixtures;
}
