/**
 * What the main thread (E2eeSession) and the frame worker say to each other: a union of
 * `{ kind, data }` messages each way. Kept apart from the worker's entry, so that importing
 * the types never pulls in the worker's code.
 */
import type { CallKey } from './keys.js';
import type { MediaKind } from './sframe.js';

export type Operation = 'encrypt' | 'decrypt';

/** Main thread → worker. */
export type WorkerRequest =
  | { kind: 'setSendKey'; data: { key: CallKey; senderIndex: number } }
  | { kind: 'addReceiveKey'; data: { key: CallKey } }
  | { kind: 'stats' }
  | {
      kind: 'streams';
      data: { readable: ReadableStream<EncodedFrame>; writable: WritableStream<EncodedFrame>; operation: Operation; kind: MediaKind };
    };

export interface FrameStats {
  encrypted: number;
  decrypted: number;
  failed: number;
}

/** Worker → main thread. */
export type WorkerReply = { kind: 'stats'; data: FrameStats };

/** What RTCRtpScriptTransform hands the worker (not in TypeScript's DOM library). */
export interface TransformOptions {
  operation: Operation;
  kind: MediaKind;
}
export type EncodedFrame = RTCEncodedVideoFrame | RTCEncodedAudioFrame;
