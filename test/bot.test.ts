// Bots (src/bot): headless participants that knock, get let in by an MLS Welcome, send
// encrypted pre-encoded VP8 + Opus through the SFU and count the frames they receive that
// authenticate. A real server on loopback, a Node host (the protocol library the browser uses)
// who approves them, and bots.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deriveLinkKeys, newCallKey, newGroupId, newLinkSecret, openCard, toBase64url } from '../src/e2ee/keys.js';
import { CallGroup, newMemberKeys, newSigningKey, readKeyPackage } from '../src/e2ee/mls.js';
import { FrameCryptor } from '../src/e2ee/sframe.js';
import { Bot, parseJoinLink } from '../src/bot/bot.js';
import { loadFixtures } from '../src/bot/fixtures.js';
import { FrameOpener } from '../src/bot/frame-opener.js';
import { FrameSealer } from '../src/bot/frame-sealer.js';
import type { StreamStats } from '../src/bot/receiver.js';
import { shutdownMediaEngine } from '../src/server/media/router.js';
import type { CallMedia } from '../src/server/sfu/call-media.js';
import type { Room } from '../src/server/rooms/room.js';
import { connectClient, createLink, signUp, startServer, until, type TestLink, type TestServer } from './support/server.js';
import { sleep, waitFor } from './support/wait.js';



/** Frames per second each bot received from each sender ("<peerId>/<kind>"), over `ms`. */
async function frameRates(bots: readonly Bot[], ms: number, field: keyof Pick<StreamStats, 'authenticatedFrames' | 'completeFrames'> = 'authenticatedFrames') {
  const count = () => bots.map((b) => new Map(b.stats().received.map((s) => [`${s.peerId}/${s.kind}`, s[field]])));
  const before = count();
  const t0 = performance.now();
  await sleep(ms);
  const after = count();
  const seconds = (performance.now() - t0) / 1000;
  return after.map((m, i) => new Map([...m].map(([k, v]) => [k, (v - (before[i]!.get(k) ?? 0)) / seconds])));
}

describe('frame opener (the bots\' fast SFrame decryption)', () => {
  it('opens exactly what the browser worker\'s FrameCryptor opens, and refuses tampered, replayed and foreign frames', async () => {
    const key = newCallKey(5);
    const sender = new FrameCryptor();
    await sender.setSendKey(key, 3);
    const opener = new FrameOpener();
    await opener.addKey(key);
    const reference = new FrameCryptor();
    await reference.addReceiveKey(key);
    const stranger = new FrameOpener();
    await stranger.addKey(newCallKey(5));
    let opened = 0;
    for (const length of [0, 1, 2, 3, 9, 10, 11, 200, 1500, 40_000]) {
      for (const meta of [{ kind: 'audio', keyFrame: false }, { kind: 'video', keyFrame: false }, { kind: 'video', keyFrame: true }] as const) {
        const frame = crypto.getRandomValues(new Uint8Array(length));
        const sealed = await sender.encrypt(frame, meta);
        const mine = opener.open(sealed, meta);
        const theirs = await reference.decrypt(sealed, meta);
        assert.ok(mine && theirs, `a ${length}-byte ${meta.kind} frame opens`);
        assert.deepEqual(new Uint8Array(mine), new Uint8Array(theirs));
        assert.deepEqual(new Uint8Array(mine), frame);
        assert.equal(opener.authenticate(sealed, meta), false, 'a replayed frame is refused');
        const tampered = sealed.slice();
        tampered[Math.floor(tampered.length / 2)]! ^= 1;
        assert.equal(opener.open(tampered, meta), undefined, 'a tampered frame is refused');
        assert.equal(stranger.open(sealed, meta), undefined, 'another call key opens nothing');
        opened++;
      }
    }
    assert.equal(opened, 30);
    // A sender on the next epoch is readable once that epoch's key is added, not before.
    const next = newCallKey(6);
    await sender.setSendKey(next, 4);
    const delta = { kind: 'video', keyFrame: false } as const;
    assert.equal(opener.open(await sender.encrypt(new Uint8Array(500), delta), delta), undefined);
    await opener.addKey(next);
    assert.ok(opener.open(await sender.encrypt(new Uint8Array(500), delta), delta));
  });
});

describe('frame sealer (the bots\' fast SFrame encryption)', () => {
  it('writes byte for byte what the browser worker\'s FrameCryptor writes, which FrameCryptor opens', async () => {
    const key = newCallKey(300); // an epoch above 255: the KID carries only its low byte
    const sealer = new FrameSealer();
    const reference = new FrameCryptor();
    // A sender index of several bytes, so the header carries a long KID.
    await Promise.all([sealer.setSendKey(key, 70_000), reference.setSendKey(key, 70_000)]);
    const receiver = new FrameCryptor();
    await receiver.addReceiveKey(key);
    let frames = 0;
    // Counters 0 … 8 and beyond take headers of every length the call's first frames use.
    for (const length of [0, 1, 2, 3, 9, 10, 11, 200, 1500, 40_000]) {
      for (const meta of [{ kind: 'audio', keyFrame: false }, { kind: 'video', keyFrame: false }, { kind: 'video', keyFrame: true }] as const) {
        const frame = crypto.getRandomValues(new Uint8Array(length));
        const mine = await sealer.encrypt(frame, meta);
        const theirs = await reference.encrypt(frame, meta);
        assert.deepEqual(new Uint8Array(mine), new Uint8Array(theirs), `a ${length}-byte ${meta.kind} frame`);
        const opened = await receiver.decrypt(mine, meta);
        assert.ok(opened, 'FrameCryptor opens it');
        assert.deepEqual(new Uint8Array(opened), frame);
        frames++;
      }
    }
    assert.equal(frames, 30);
    // A key of another call opens nothing; without a send key nothing is sent.
    const stranger = new FrameCryptor();
    await stranger.addReceiveKey(newCallKey(300));
    const delta = { kind: 'video', keyFrame: false } as const;
    assert.equal(await stranger.decrypt(sealer.seal(new Uint8Array(500), delta), delta), undefined);
    await assert.rejects(new FrameSealer().encrypt(new Uint8Array(10), delta), /no send key/);
  });
});

describe('bots in a call, through the SFU', { timeout: 150_000 }, () => {
  let server: TestServer;
  let link: TestLink;
  let host: Awaited<ReturnType<typeof connectClient>>;
  const bots: Bot[] = [];
  const cards = new Map<string, string>();

  before(async () => {
    loadFixtures();
    server = await startServer();
    const cookie = await signUp(server, 'botmaster');
    link = await createLink(server, cookie, 'Bot call');
    host = await connectClient(server, link, cookie);
    host.signaling.on('knock', (m) => cards.set(m.knock.id, m.knock.card));
    await host.call.join('Botmaster');
    await until(host.call, () => host.call.phase.kind === 'in-call' && host.call.keys !== undefined);
  });
  after(async () => {
    await Promise.all(bots.map((b) => b.leave()));
    host?.call.leave();
    await sleep(200);
    host?.signaling.close();
    await server?.close();
    shutdownMediaEngine();
  });

  it('bots knock with a name, are approved by the host, and each gets ≥ 20 authenticated frames/s from every other bot', async () => {
    const names = ['Bot Ada', 'Bot Bea', 'Bot Cy'];
    bots.push(...(await Promise.all(names.map((name) => Bot.join({ link: link.url, name, bindAddress: '127.0.0.1', layers: ['q', 'h', 'f'] })))));
    // The host sees each knock under the name the bot gave (its sealed card opens with the link secret).
    await until(host.call, () => host.call.knocks.size === 3, 15_000);
    assert.deepEqual([...host.call.knocks.values()].map((k) => k.name).sort(), names);
    for (const k of [...host.call.knocks.values()]) await host.call.approve(k.id);
    await Promise.all(bots.map((b) => b.inCall(20_000)));
    // Every bot holds the host's key, as the safety code shows.
    await waitFor('the same key everywhere', () => bots.every((b) => b.call.safetyCode === host.call.safetyCode), 10_000);

    await waitFor('media between all bots', () =>
      bots.every((b) => b.stats().received.filter((s) => s.authenticatedFrames > (s.kind === 'video' ? 30 : 50)).length === 4),
    );
    const rates = await frameRates(bots, 5000);
    for (const [i, bot] of bots.entries()) {
      for (const other of bots) {
        if (other === bot) continue;
        const video = rates[i]!.get(`${other.id}/video`) ?? 0;
        const audio = rates[i]!.get(`${other.id}/audio`) ?? 0;
        const detail = () => JSON.stringify(bot.stats().received.filter((s) => s.peerId === other.id));
        assert.ok(video >= 20, `${names[i]} gets ${video.toFixed(1)} authenticated video frames/s from ${other.id}: ${detail()}`);
        assert.ok(audio >= 35, `${names[i]} gets ${audio.toFixed(1)} authenticated audio frames/s from ${other.id}: ${detail()}`);
      }
      const stats = bot.stats();
      assert.equal(stats.negotiationFailures, 0);
      // Only the few frames sent around a join, before a sender applied the commit, are unreadable to the newcomer.
      for (const s of stats.received) {
        assert.ok(s.unauthenticatedFrames <= 0.05 * s.completeFrames, `${s.unauthenticatedFrames} of ${s.completeFrames} frames from ${s.peerId} unreadable`);
      }
    }
    // The SFU picked a simulcast layer for each subscriber: its key frames show a layer's size.
    const sizes = new Set(bots.flatMap((b) => b.stats().received.filter((s) => s.kind === 'video').map((s) => `${s.width}x${s.height}`)));
    for (const size of sizes) assert.ok(['320x180', '640x360', '1280x720'].includes(size), `received layer ${size}`);
  });

  it('a PLI from the SFU makes a bot send a key frame at once', async () => {
    const [a, b] = bots;
    const router = ((server.app.rooms.get(link.id) as Room).media as CallMedia).router;
    const producer = [...router.producers.values()].find((p) => p.peerId === a!.id && p.kind === 'video')!;
    const keyFrames = () => b!.stats().received.find((s) => s.peerId === a!.id && s.kind === 'video')!.keyFrames;
    await sleep(1100); // past the SFU's per-layer key frame rate limit
    const before = keyFrames();
    const requests = a!.stats().sent.keyFrameRequests;
    const t0 = performance.now();
    producer.requestKeyFrame();
    // The fixture's own key frames come once a second; an answer to the PLI comes within a frame or two.
    await waitFor('a key frame after the PLI', () => keyFrames() > before, 2000);
    const ms = performance.now() - t0;
    assert.ok(a!.stats().sent.keyFrameRequests > requests, 'the bot saw the PLI');
    assert.ok(ms < 400, `key frame ${ms.toFixed(0)} ms after the PLI`);
  });

  it('a publisher sends only the layers some tile needs: small tiles pause its larger layers, a big tile resumes them', async () => {
    const [a, b, c] = bots as [Bot, Bot, Bot];
    const router = ((server.app.rooms.get(link.id) as Room).media as CallMedia).router;
    const videoOf = (bot: Bot) => [...router.producers.values()].find((p) => p.peerId === bot.id && p.kind === 'video')!;
    // Every bot shows the others at 320×180, which the smallest layer (320×180) fills: after the
    // SFU's pause delay each is asked to send that layer only, and the SFU sees only it flow.
    await waitFor('each bot sends its small layer only', () => bots.every((x) => x.stats().sent.layers.join() === 'q'), 15_000).catch((err: Error) => {
      const demands = bots.map((x) => `${x.stats().sent.layers.join()} [${videoOf(x).consumers.map((c) => c.demand).join()}] ${JSON.stringify(videoOf(x).stats().layers)}`);
      throw new Error(`${err.message}: ${demands.join('; ')}`);
    });
    await waitFor('only the small layer flows into the SFU', () => videoOf(a).stats().layers.map((l) => l.active).join() === 'true,false,false', 5000);
    const small = await frameRates(bots, 3000);
    for (const [i, bot] of bots.entries()) {
      for (const other of bots) {
        if (other !== bot) assert.ok((small[i]!.get(`${other.id}/video`) ?? 0) >= 20, `${bot.id} still gets ≥ 20 frames/s of ${other.id}`);
      }
    }

    // B makes A's tile big (1280×720): A is asked for every layer again at once, and B gets A's
    // full layer; C, whom nobody shows big, stays on its small layer.
    const t0 = performance.now();
    b.call.setViewport([...b.call.participants.keys()].map((participantId) => ({ participantId, ...(participantId === a.id ? { width: 1280, height: 720 } : { width: 320, height: 180 }) })));
    await waitFor('A sends every layer again', () => a.stats().sent.layers.join() === 'q,h,f', 3000);
    const fullOfA = () => b.stats().received.find((s) => s.peerId === a.id && s.kind === 'video')?.width === 1280;
    await waitFor('B receives A\'s full layer', fullOfA, 5000);
    const ms = performance.now() - t0;
    assert.ok(ms < 3000, `the full layer ${ms.toFixed(0)} ms after the bigger tile`);
    assert.equal(c.stats().sent.layers.join(), 'q');
    const big = await frameRates([b], 3000);
    assert.ok((big[0]!.get(`${a.id}/video`) ?? 0) >= 20, 'B gets ≥ 20 frames/s of A\'s full layer');

    // Back to small: after the delay, A pauses its larger layers again.
    b.call.setViewport([...b.call.participants.keys()].map((participantId) => ({ participantId, width: 320, height: 180 })));
    await waitFor('A sends its small layer only again', () => a.stats().sent.layers.join() === 'q', 10_000);
  });

  it('a listener that throws inside the SFU\'s tick is caught and counted; the other listeners run and the call goes on', async () => {
    const [a, b] = bots as [Bot, Bot];
    const router = ((server.app.rooms.get(link.id) as Room).media as CallMedia).router;
    const videoOfA = [...router.producers.values()].find((p) => p.peerId === a.id && p.kind === 'video')!;
    const metric = async () => Number(/^linkcall_media_listener_errors_total (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
    const before = await metric();
    // A bug in some listener of the tick's sendLayers event, ahead of the call's own listener.
    const bug = () => {
      throw new Error('a listener bug');
    };
    videoOfA.prependListener('sendLayers', bug);
    try {
      await waitFor('A sends its small layer only', () => a.stats().sent.layers.join() === 'q', 15_000);
      b.call.setViewport([...b.call.participants.keys()].map((participantId) => ({ participantId, ...(participantId === a.id ? { width: 1280, height: 720 } : { width: 320, height: 180 }) })));
      // The call's own listener still ran: A is asked for every layer, and B gets A's full layer.
      await waitFor('A sends every layer again', () => a.stats().sent.layers.join() === 'q,h,f', 5000);
      await waitFor('B receives A\'s full layer', () => b.stats().received.find((s) => s.peerId === a.id && s.kind === 'video')?.width === 1280, 5000);
      assert.ok((await metric()) > before, 'the throw is counted in /metrics');
      const rates = await frameRates(bots, 2000);
      for (const [i, bot] of bots.entries()) {
        for (const other of bots) if (other !== bot) assert.ok((rates[i]!.get(`${other.id}/video`) ?? 0) >= 15, `${bot.id} still gets ${other.id}'s video`);
      }
    } finally {
      videoOfA.off('sendLayers', bug);
      b.call.setViewport([...b.call.participants.keys()].map((participantId) => ({ participantId, width: 320, height: 180 })));
    }
  });

  it('the host mutes a bot: the SFU stops forwarding its audio at once, its page is told who did it; unmuting itself brings it back', async () => {
    const [a, b] = bots as [Bot, Bot];
    const audioFrom = async () => (await frameRates([b], 1500)).at(0)!.get(`${a.id}/audio`) ?? 0;
    assert.ok((await audioFrom()) >= 20, 'B hears A before the mute');
    host.call.mute(a.id!);
    await waitFor('A is told who muted it', () => a.call.mutedBy === 'Botmaster', 5000);
    await sleep(300);
    assert.equal(await audioFrom(), 0, 'no audio of A reaches B while A is muted (A keeps sending)');
    const refused = b.signaling.next('error');
    b.call.mute(a.id!);
    assert.equal((await refused).code, 'not_allowed', 'a guest cannot mute anyone');
    a.call.setMediaState(true, true);
    await sleep(500);
    assert.ok((await audioFrom()) >= 20, 'A unmuted itself: B hears it again');
  });

  it('a bot without the link secret, let in by a tampering server, receives every frame but authenticates none', async () => {
    const wrongSecret = newLinkSecret();
    const wrong = parseJoinLink(link.url);
    const intruder = await Bot.join({ link: { ...wrong, secret: wrongSecret }, name: 'Mallory', bindAddress: '127.0.0.1' });
    bots.push(intruder);
    // Its card does not open with the link secret: the host sees an unreadable knock it cannot approve.
    await until(host.call, () => [...host.call.knocks.values()].some((k) => k.name === undefined), 15_000);
    const knock = [...host.call.knocks.values()].find((k) => k.name === undefined)!;
    await host.call.approve(knock.id);
    await sleep(500);
    assert.equal(intruder.call.phase.kind, 'waiting', 'the host cannot let in an unreadable knock');
    // While it waits, its receiving connection to the SFU is up (so admission needs no ICE or DTLS)
    // but carries nothing: the SFU made it no consumer, and it got no packet.
    await waitFor('the waiting bot\'s empty receiving connection', () => intruder.stats().connections.receive === 'connected', 10_000);
    const waitingRouter = ((server.app.rooms.get(link.id) as Room).media as CallMedia).router;
    const waitingTransport = [...waitingRouter.subscribeTransports].find((t) => t.peerId === knock.id);
    assert.ok(waitingTransport, 'the waiting bot has a receiving transport');
    assert.equal(waitingTransport.consumers.size, 0, 'nothing is forwarded to someone not let in');
    await sleep(500);
    assert.deepEqual(intruder.stats().received.filter((s) => s.packets > 0), [], 'no media reached the waiting bot');
    // It may publish while it waits (pages do, with empty senders), and even send, under a key of
    // its own: the SFU takes the packets and forwards them to no one.
    intruder.call.onKeys?.({ key: newCallKey(1), senderIndex: 77 });
    await intruder.publishNow();
    const waitingVideo = () => [...waitingRouter.producers.values()].find((p) => p.peerId === knock.id && p.kind === 'video');
    await waitFor('the SFU receives the waiting bot\'s video', () => (waitingVideo()?.stats().packets ?? 0) > 50, 10_000);
    assert.equal(waitingVideo()!.stats().consumers, 0, 'nobody consumes a waiting guest');
    for (const b of bots) {
      if (b !== intruder) assert.deepEqual(b.stats().received.filter((s) => s.peerId === knock.id), [], 'no bot got anything of the waiting bot');
    }

    // The server admits it anyway, with a Welcome into a group of the server's own making, its group id
    // MACed with the intruder's own (wrong) link keys — the only kind the intruder accepts: the
    // members refuse its commit, and the intruder holds keys no one uses.
    const wrongKeys = await deriveLinkKeys(wrongSecret);
    const opened = await openCard(wrongKeys, link.id, cards.get(knock.id)!);
    const card = opened && (await readKeyPackage(opened));
    assert.ok(card, 'the intruder\'s card opens with its own secret');
    const forger = await CallGroup.create(await newMemberKeys('Server', Date.now(), await newSigningKey()), {
      hostKeyHash: link.hostKeyHash,
      isGone: () => false,
      now: () => Date.now(),
      groupIds: { make: () => newGroupId(wrongKeys, link.id), check: async () => true },
    });
    const forged = await forger.add([card.keyPackage]);
    const room = server.app.rooms.get(link.id) as Room;
    const refusedBefore = host.call.refusedCommits;
    room.approve(host.call.you!.id, knock.id, room.commitSlot, toBase64url(forged.commit), toBase64url(forged.welcome!));
    await intruder.inCall(15_000);
    await waitFor('the host refuses the forged commit', () => host.call.refusedCommits > refusedBefore, 5000);
    assert.equal(host.call.memberCount, 4, 'the group is as it was: the host and three bots');

    const real = bots.filter((b) => b !== intruder);
    await waitFor('the intruder receives video of every bot', () =>
      intruder.stats().received.filter((s) => s.kind === 'video' && s.completeFrames > 60).length === real.length,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(intruder.stats())}`);
    });
    const [complete, authenticated] = [await frameRates([intruder], 2000, 'completeFrames'), intruder.stats()];
    for (const b of real) {
      const rate = complete[0]!.get(`${b.id}/video`) ?? 0;
      assert.ok(rate >= 20, `the intruder gets ${rate.toFixed(1)} complete frames/s from ${b.id}`);
    }
    for (const s of authenticated.received) assert.equal(s.authenticatedFrames, 0, `frames of ${s.peerId} (${s.kind}) opened without the key`);
    assert.ok(authenticated.received.some((s) => s.unauthenticatedFrames > 100), 'the intruder tried to open what it got');
    // And the real bots cannot read what the intruder sends, while still reading each other.
    await waitFor('the bots receive the intruder', () =>
      real.every((b) => (b.stats().received.find((s) => s.peerId === intruder.id && s.kind === 'video')?.completeFrames ?? 0) > 30),
    );
    const rates = await frameRates(real, 4000);
    for (const [i, b] of real.entries()) {
      const fromIntruder = b.stats().received.filter((s) => s.peerId === intruder.id);
      assert.ok(fromIntruder.length > 0, 'the bots receive the intruder');
      // (Its audio may not be forwarded at all: the SFU forwards only the 3 loudest microphones.)
      for (const s of fromIntruder) assert.equal(s.authenticatedFrames, 0, `${s.kind} frames of the intruder opened with the call key`);
      assert.ok(fromIntruder.some((s) => s.kind === 'video' && s.unauthenticatedFrames > 30), 'video of the intruder arrived');
      for (const other of real) {
        const rate = rates[i]!.get(`${other.id}/video`) ?? 0;
        const detail = () => JSON.stringify(b.stats().received.filter((s) => s.peerId === other.id));
        if (other !== b) assert.ok(rate >= 20, `${rate.toFixed(1)} authenticated frames/s from ${other.id} with the intruder in the call: ${detail()}`);
      }
    }
  });
});
