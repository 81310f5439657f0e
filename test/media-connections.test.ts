/**
 * The media negotiation rules every participant follows (src/client/media-connections.ts),
 * without a browser or a network: stand-in connections and a stand-in signaling client.
 * Browsers and bots run the same rules; test/e2e and test/bot.test.ts show them with real media.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ConnectionState,
  MediaConnections,
  type MediaSignaling,
  type PublishConnection,
  type ReceiveConnection,
} from '../src/client/media-connections.js';
import type { ClientMessage, ServerMessage } from '../src/protocol/messages.js';

const MEDIA_OFFER = 'v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n';
const EMPTY_OFFER = 'v=0\r\n';

class FakeSignaling {
  open = true;
  readonly sent: ClientMessage[] = [];
  private readonly handlers = new Map<string, Set<(m: any) => void>>();
  on(type: string, handler: (m: any) => void): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }
  send(message: ClientMessage): number {
    this.sent.push(message);
    return this.sent.length;
  }
  emit(message: Partial<ServerMessage> & { type: string }): void {
    for (const h of this.handlers.get(message.type) ?? []) h(message);
  }
  of(type: string): ClientMessage[] {
    return this.sent.filter((m) => m.type === type);
  }
}

let made = 0;

class FakePublisher implements PublishConnection {
  readonly name = `publisher ${++made}`;
  state: ConnectionState = 'new';
  offers = 0;
  readonly answers: string[] = [];
  readonly layers: string[] = [];
  private offered?: Promise<string>;
  constructor(readonly changed: () => void) {}
  offer(): Promise<string> {
    this.offers++;
    this.offered ??= Promise.resolve(`offer of ${this.name}`);
    return this.offered;
  }
  async setAnswer(sdp: string): Promise<void> {
    this.answers.push(sdp);
  }
  async settled(): Promise<void> {}
  sendLayers(mid: string, layers: number, from: number, thinSmall: boolean): void {
    this.layers.push(`${mid}:${from}-${layers}${thinSmall ? ' thin' : ''}`);
  }
  close(): void {
    this.state = 'closed';
  }
}

class FakeReceiver implements ReceiveConnection {
  state: ConnectionState = 'new';
  readonly taken: string[] = [];
  /** Offers whose answer is held back until released. */
  private readonly held = new Map<string, () => void>();
  holdBack = new Set<string>();
  constructor(readonly changed: () => void) {}
  async answer(offer: string): Promise<string> {
    this.taken.push(offer);
    if (this.holdBack.has(offer)) await new Promise<void>((resolve) => this.held.set(offer, resolve));
    return `answer to ${offer}`;
  }
  release(offer: string): void {
    this.held.get(offer)?.();
  }
  close(): void {
    this.state = 'closed';
  }
}

function setup(rebuild = true) {
  const signaling = new FakeSignaling();
  const publishers: FakePublisher[] = [];
  const receivers: FakeReceiver[] = [];
  const media = new MediaConnections(
    signaling as unknown as MediaSignaling,
    {
      publisher: (changed) => {
        const p = new FakePublisher(changed);
        publishers.push(p);
        return p;
      },
      receiver: (changed) => {
        const r = new FakeReceiver(changed);
        receivers.push(r);
        return r;
      },
    },
    { rebuild },
  );
  return { signaling, media, publishers, receivers };
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

describe('media negotiation rules (client/media-connections.ts)', () => {
  it('a publishing connection\'s offer goes out once, however often the page or bot publishes', async () => {
    const { signaling, media } = setup();
    await media.connectPublisher();
    await media.publish();
    await media.publish();
    assert.equal(signaling.of('publish').length, 1);
    assert.equal(media.published, true);
  });

  it('the SFU\'s offers are answered one at a time, in the order they came', async () => {
    const { signaling, media, receivers } = setup();
    media.allowMedia();
    const receiver = receivers[0]!;
    receiver.holdBack.add('v=0\r\nfirst\r\n');
    signaling.emit({ type: 'subscribeOffer', sdp: 'v=0\r\nfirst\r\n' });
    signaling.emit({ type: 'subscribeOffer', sdp: 'v=0\r\nsecond\r\n' });
    await tick();
    assert.deepEqual(receiver.taken, ['v=0\r\nfirst\r\n'], 'the second waits for the first');
    receiver.release('v=0\r\nfirst\r\n');
    await tick();
    await tick();
    assert.deepEqual(
      signaling.of('subscribeAnswer').map((m) => (m as { sdp: string }).sdp),
      ['answer to v=0\r\nfirst\r\n', 'answer to v=0\r\nsecond\r\n'],
    );
  });

  it('an offer that carries media is answered only once a verified call key is in; an empty one at once', async () => {
    const { signaling, media } = setup();
    signaling.emit({ type: 'subscribeOffer', sdp: EMPTY_OFFER });
    await tick();
    assert.equal(signaling.of('subscribeAnswer').length, 1, 'the lobby\'s empty offer is answered');
    signaling.emit({ type: 'subscribeOffer', sdp: MEDIA_OFFER });
    await tick();
    assert.equal(signaling.of('subscribeAnswer').length, 1, 'no media is taken without a key');
    media.allowMedia();
    await media.mediaAnswered(5000);
    assert.equal(signaling.of('subscribeAnswer').length, 2);
    media.close();
  });

  it('after a restart the SFU\'s offers for the old transports are ignored until it says mediaRestarted; media is published again', async () => {
    const { signaling, media, publishers, receivers } = setup();
    media.allowMedia();
    await media.publish();
    await media.restart();
    assert.equal(signaling.of('restartMedia').length, 1);
    assert.equal(publishers[0]!.state, 'closed');
    assert.equal(receivers[0]!.state, 'closed');
    assert.deepEqual(
      signaling.of('publish').map((m) => (m as { sdp: string }).sdp),
      [`offer of ${publishers[0]!.name}`, `offer of ${publishers[1]!.name}`],
      'the new publishing connection publishes at once',
    );
    signaling.emit({ type: 'subscribeOffer', sdp: EMPTY_OFFER });
    await tick();
    assert.deepEqual(receivers[1]!.taken, [], 'an offer for the old transports');
    signaling.emit({ type: 'mediaRestarted' });
    signaling.emit({ type: 'subscribeOffer', sdp: EMPTY_OFFER });
    await tick();
    assert.deepEqual(receivers[1]!.taken, [EMPTY_OFFER]);
    media.close();
  });

  it('the SFU\'s answer and its sendLayers reach the current publishing connection; a new one publishes once the old one settled', async () => {
    const { signaling, media, publishers } = setup();
    await media.publish();
    signaling.emit({ type: 'publishAnswer', sdp: 'answer 1' });
    assert.equal(await media.replacePublisher(), true);
    signaling.emit({ type: 'publishAnswer', sdp: 'answer 2' });
    signaling.emit({ type: 'sendLayers', mid: '1', layers: 1 });
    signaling.emit({ type: 'sendLayers', mid: '1', layers: 2, thinSmall: true });
    await tick();
    assert.deepEqual(publishers[0]!.answers, ['answer 1']);
    assert.deepEqual(publishers[1]!.answers, ['answer 2']);
    assert.deepEqual(publishers[1]!.layers, ['1:0-1', '1:0-2 thin']);
    assert.equal(publishers[0]!.state, 'closed');
    assert.equal(signaling.of('publish').length, 2);
    media.close();
  });

  it('a failed connection is rebuilt, and rebuilding is given up after five tries in a row', async () => {
    const { signaling, media, publishers, receivers } = setup();
    let failures = 0;
    media.onFailure = () => failures++;
    for (let i = 0; i < 6; i++) {
      const receiver = receivers.at(-1)!;
      receiver.state = 'failed';
      receiver.changed();
      await tick();
      signaling.emit({ type: 'mediaRestarted' });
    }
    assert.equal(signaling.of('restartMedia').length, 5);
    assert.equal(publishers.length, 6);
    assert.equal(failures, 1, 'the page says the media failed');
    media.close();
  });

  it('once let in, a publishing offer the SFU never answers is made again on new connections', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { signaling, media, publishers } = setup();
    await media.connectPublisher();
    t.mock.timers.tick(60_000);
    assert.equal(signaling.of('restartMedia').length, 0, 'a waiting guest\'s offer may wait for its admission');
    await media.publish();
    t.mock.timers.tick(9_000);
    assert.equal(signaling.of('restartMedia').length, 0);
    t.mock.timers.tick(1_000);
    await new Promise((resolve) => setImmediate(resolve)); // (setTimeout is mocked here)
    assert.equal(signaling.of('restartMedia').length, 1, 'no answer in 10 s: rebuilt');
    assert.equal(signaling.of('publish').length, 2, 'and published again');
    signaling.emit({ type: 'mediaRestarted' });
    signaling.emit({ type: 'publishAnswer', sdp: 'answer' });
    t.mock.timers.tick(60_000);
    assert.deepEqual(publishers[1]!.answers, ['answer']);
    assert.equal(signaling.of('restartMedia').length, 1, 'answered: nothing more');
    media.close();
  });

  it('a bot\'s connections (rebuild: false) are never rebuilt', async () => {
    const { signaling, media, receivers } = setup(false);
    receivers[0]!.state = 'failed';
    receivers[0]!.changed();
    media.checkConnections();
    await tick();
    assert.equal(signaling.of('restartMedia').length, 0);
    assert.equal(receivers.length, 1);
    media.close();
  });
});
