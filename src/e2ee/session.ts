/**
 * Main-thread side of end-to-end encryption: owns the frame worker, hands it
 * keys, and puts it between every RTCRtpSender/RTCRtpReceiver and the network.
 *
 * One E2eeSession per participant and call. Do not run two sessions with the
 * same send key and sender index: each counts its frames from zero, and two
 * counters under one key would repeat nonces.
 */
import { type CallKey, checkCallKey, checkSenderIndex } from './keys.js';
import type { MediaKind } from './sframe.js';
import type { FrameStats, Operation, TransformOptions, WorkerReply, WorkerRequest } from './worker-messages.js';

interface EncodedStreams {
  readable: ReadableStream;
  writable: WritableStream;
}
/** Chromium's older API, used where RTCRtpScriptTransform is missing. */
interface WithEncodedStreams {
  createEncodedStreams(): EncodedStreams;
}

function hasScriptTransform(): boolean {
  return typeof globalThis.RTCRtpScriptTransform === 'function';
}

function hasEncodedStreams(): boolean {
  return typeof globalThis.RTCRtpSender === 'function' && 'createEncodedStreams' in RTCRtpSender.prototype;
}

/** Whether this browser can encrypt frames at all; without it, it cannot take part in a call. */
export function e2eeSupported(): boolean {
  return typeof Worker === 'function' && (hasScriptTransform() || hasEncodedStreams());
}

/**
 * Spread into every RTCPeerConnection configuration of an encrypted call:
 * Chromium's createEncodedStreams path only works on connections made with
 * `encodedInsertableStreams: true` (and RTCRtpScriptTransform must not be mixed with it).
 */
export function peerConnectionConfig(): RTCConfiguration {
  if (hasScriptTransform() || !hasEncodedStreams()) return {};
  return { encodedInsertableStreams: true } as RTCConfiguration;
}

export class E2eeSession {
  /** Whether this browser can encrypt frames at all (if not, it cannot take part in an encrypted call). */
  readonly supported: boolean;
  private readonly worker?: Worker;
  private readonly pendingStats: { resolve(s: FrameStats): void; reject(e: Error): void }[] = [];
  private closed = false;

  constructor() {
    this.supported = e2eeSupported();
    if (!this.supported) return;
    this.worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'e2ee' });
    this.worker.onmessage = ({ data }: MessageEvent<WorkerReply>) => {
      if (data.kind === 'stats') this.pendingStats.shift()?.resolve(data.data);
    };
  }

  /** `kind` is needed only when the sender has no track yet. */
  attachSender(sender: RTCRtpSender, kind?: MediaKind): void {
    this.attach(sender, 'encrypt', kind ?? mediaKind(sender.track));
  }

  attachReceiver(receiver: RTCRtpReceiver): void {
    this.attach(receiver, 'decrypt', mediaKind(receiver.track));
  }

  /** Encrypt from now on with this key. Receivers must already have it (the MLS commit that made it reaches them at the same moment). */
  setSendKey(key: CallKey, senderIndex: number): void {
    checkCallKey(key);
    checkSenderIndex(senderIndex);
    this.post({ kind: 'setSendKey', data: { key, senderIndex } });
  }

  addReceiveKey(key: CallKey): void {
    checkCallKey(key);
    this.post({ kind: 'addReceiveKey', data: { key } });
  }

  /** Frame counts since the session began (never contents). */
  stats(): Promise<FrameStats> {
    return new Promise((resolve, reject) => {
      if (this.closed || !this.worker) {
        reject(new Error('E2eeSession is closed or unsupported'));
        return;
      }
      this.pendingStats.push({ resolve, reject });
      this.post({ kind: 'stats' });
    });
  }

  /** Stops the worker; frames of attached senders and receivers stop flowing. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker?.terminate();
    for (const p of this.pendingStats.splice(0)) p.reject(new Error('E2eeSession closed'));
  }

  private attach(target: RTCRtpSender | RTCRtpReceiver, operation: Operation, kind: MediaKind): void {
    const worker = this.usable();
    const options: TransformOptions = { operation, kind };
    if (hasScriptTransform()) {
      target.transform = new RTCRtpScriptTransform(worker, options);
      return;
    }
    const { readable, writable } = (target as unknown as WithEncodedStreams).createEncodedStreams();
    const message: WorkerRequest = { kind: 'streams', data: { readable, writable, operation, kind } };
    worker.postMessage(message, [readable as unknown as Transferable, writable as unknown as Transferable]);
  }

  private post(message: WorkerRequest): void {
    this.usable().postMessage(message);
  }

  private usable(): Worker {
    if (!this.worker) throw new Error('end-to-end encryption is not supported in this browser');
    if (this.closed) throw new Error('E2eeSession is closed');
    return this.worker;
  }
}

function mediaKind(track: MediaStreamTrack | null): MediaKind {
  const kind = track?.kind;
  if (kind !== 'audio' && kind !== 'video') throw new TypeError(`cannot tell the media kind of track ${String(kind)}`);
  return kind;
}
