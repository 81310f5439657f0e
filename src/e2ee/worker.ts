/**
 * The frame worker: every encoded audio/video frame of the call passes through
 * here, encrypted on the way out and decrypted on the way in. Frames reach it
 * through RTCRtpScriptTransform (`rtctransform` events) or, in older Chromium,
 * as readable/writable streams posted by the main thread. Nothing here logs;
 * the main thread only ever gets counts back.
 */
import { FrameCryptor } from './sframe.js';
import type { EncodedFrame, FrameStats, TransformOptions, WorkerReply, WorkerRequest } from './worker-messages.js';

interface ScriptTransformer {
  readonly readable: ReadableStream<EncodedFrame>;
  readonly writable: WritableStream<EncodedFrame>;
  readonly options: TransformOptions;
  sendKeyFrameRequest?(): Promise<void>;
}
interface WorkerScope {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  onrtctransform?: ((event: { transformer: ScriptTransformer }) => void) | null;
  postMessage(message: WorkerReply): void;
}

// A decoder that missed frames needs a key frame; ask at most this often per stream.
const KEY_FRAME_REQUEST_INTERVAL_MS = 1000;

const scope = self as unknown as WorkerScope;
const cryptor = new FrameCryptor();
const stats: FrameStats = { encrypted: 0, decrypted: 0, failed: 0 };

function pipe(
  readable: ReadableStream<EncodedFrame>,
  writable: WritableStream<EncodedFrame>,
  { operation, kind }: TransformOptions,
  requestKeyFrame?: () => Promise<void>,
): void {
  let failing = false;
  let lastRequest = -Infinity;
  const transform = new TransformStream<EncodedFrame, EncodedFrame>({
    async transform(frame, controller) {
      const keyFrame = kind === 'video' && (frame as RTCEncodedVideoFrame).type === 'key';
      const data = new Uint8Array(frame.data);
      let out: Uint8Array | undefined;
      try {
        out = operation === 'encrypt' ? await cryptor.encrypt(data, { kind, keyFrame }) : await cryptor.decrypt(data, { kind, keyFrame });
      } catch {
        out = undefined; // no send key yet: nothing leaves unencrypted
      }
      if (!out) {
        stats.failed++;
        failing = true;
        return; // dropped
      }
      if (operation === 'encrypt') stats.encrypted++;
      else stats.decrypted++;
      // Decryption works again (a key arrived) but the decoder lost its reference frames.
      if (failing && kind === 'video' && !keyFrame && requestKeyFrame && performance.now() - lastRequest > KEY_FRAME_REQUEST_INTERVAL_MS) {
        lastRequest = performance.now();
        requestKeyFrame().catch(() => {});
      }
      failing = false;
      frame.data = out.buffer as ArrayBuffer;
      controller.enqueue(frame);
    },
  });
  readable
    .pipeThrough(transform)
    .pipeTo(writable)
    .catch(() => {}); // the sender or receiver went away
}

scope.onrtctransform = (event) => {
  const t = event.transformer;
  pipe(t.readable, t.writable, t.options, t.sendKeyFrameRequest?.bind(t));
};

scope.onmessage = ({ data: message }) => {
  switch (message.kind) {
    case 'setSendKey':
      cryptor.setSendKey(message.data.key, message.data.senderIndex).catch(() => {});
      break;
    case 'addReceiveKey':
      cryptor.addReceiveKey(message.data.key).catch(() => {});
      break;
    case 'stats':
      scope.postMessage({ kind: 'stats', data: { ...stats } });
      break;
    case 'streams': {
      const { readable, writable, operation, kind } = message.data;
      pipe(readable, writable, { operation, kind });
      break;
    }
  }
};
