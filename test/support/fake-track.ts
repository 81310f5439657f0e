import type { Track } from 'node-datachannel';

/** Enough of a node-datachannel Track for Producer/Consumer tests without a network: records what is sent. */
export class FakeTrack {
  sent: Buffer[] = [];
  onOpenCb: (() => void) | undefined;
  onMessageCb: ((b: Buffer) => void) | undefined;
  isOpen = (): boolean => true;
  sendMessageBinary = (b: Buffer): boolean => (this.sent.push(Buffer.from(b)), true);
  onOpen = (cb: () => void): void => void (this.onOpenCb = cb);
  onClosed = (): void => {};
  onMessage = (cb: (b: Buffer) => void): void => void (this.onMessageCb = cb);
  get asTrack(): Track {
    return this as unknown as Track;
  }
}
