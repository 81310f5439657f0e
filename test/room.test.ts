import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LinkcallError, type ErrorCode } from '../src/protocol/errors.js';
import type { ServerMessage } from '../src/protocol/messages.js';
import { Room, type RoomMedia, type RoomPeer } from '../src/server/rooms/room.js';

/** A participant's screen, as far as the room can reach it. */
class TestPeer implements RoomPeer {
  messages: ServerMessage[] = [];
  closedWith?: ErrorCode;
  send(message: ServerMessage): void {
    this.messages.push(message);
  }
  close(code: ErrorCode): void {
    this.closedWith = code;
  }
  detached = false;
  detach(): void {
    this.detached = true;
  }
  /** Room messages received (what a client counts for resume). */
  get received(): number {
    return this.messages.filter((m) => !['pong', 'error', 'closed', 'resumed'].includes(m.type)).length;
  }
  last<T extends ServerMessage['type']>(type: T): Extract<ServerMessage, { type: T }> | undefined {
    return this.messages.filter((m) => m.type === type).at(-1) as Extract<ServerMessage, { type: T }> | undefined;
  }
}

/** Records which participants the room handed media transports to. */
class MediaLedger implements RoomMedia {
  /** Lobby guests whose (empty) receiving transport is connected ahead of time. */
  connected = new Set<string>();
  admitted = new Set<string>();
  published: string[] = [];
  /** Participants whose tracks may reach others: admitted ones (a lobby guest publishes into nothing). */
  forwarded = new Set<string>();
  closed = false;
  connect(id: string): void {
    this.connected.add(id);
  }
  admit(id: string): void {
    this.connected.delete(id);
    this.admitted.add(id);
    if (this.published.includes(id)) this.forwarded.add(id);
  }
  async publish(id: string): Promise<string> {
    if (!this.admitted.has(id) && !this.connected.has(id)) throw new Error('publish from a participant without transports');
    this.published.push(id);
    if (this.admitted.has(id)) this.forwarded.add(id);
    return 'v=0 answer';
  }
  async answer(): Promise<void> {}
  /** Whose cameras were asked for a key frame. */
  keyFrames: string[] = [];
  keyFrame(id: string): void {
    this.keyFrames.push(id);
  }
  drop(id: string): void {
    this.connected.delete(id);
    this.admitted.delete(id);
    this.forwarded.delete(id);
  }
  close(): void {
    this.closed = true;
  }
  /** Set by the room: call it to make the media fail for good (a media worker that died). */
  fail?: (code: ErrorCode) => void;
  onFailure(listener: (code: ErrorCode) => void): void {
    this.fail = listener;
  }
}

function setup(limits = {}) {
  let clock = 1_000_000;
  const media = new MediaLedger();
  const room = new Room({
    linkId: 'AAAAAAAAAAAAAAAAAAAAAA',
    linkName: 'Standup',
    ownerAccountId: 'owner',
    hostName: 'ana',
    media,
    limits,
    now: () => clock,
  });
  const hostPeer = new TestPeer();
  const advance = (ms: number) => (clock += ms);
  return { room, media, hostPeer, advance };
}

/** Opaque to the room: it only orders and passes on commits and Welcomes. */
const COMMIT = 'Q29tbWl0';
const WELCOME = 'V2VsY29tZQ';
/** Approve with an (opaque) Add commit for the room's current slot. */
function approve(room: Room, actor: string, target: string): void {
  room.approve(actor, target, room.commitSlot, COMMIT, WELCOME);
}

function refusedWith(code: ErrorCode) {
  return (err: unknown) => err instanceof LinkcallError && err.code === code;
}

describe('Room admission rules', () => {
  it('lets the link owner in at once as host', () => {
    const { room, hostPeer, media } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    assert.equal(hostPeer.last('joined')?.you.role, 'host');
    assert.equal(hostPeer.last('joined')?.canApprove, true);
    assert.ok(media.admitted.has(host));
  });

  it('puts a guest in the lobby, tells it who to wait for, and shows the knock to the host', () => {
    const { room, hostPeer, media } = setup();
    room.join(hostPeer, 'Ana', 'owner');
    const guestPeer = new TestPeer();
    const guest = room.join(guestPeer, 'Bob', undefined);
    assert.deepEqual(guestPeer.last('waiting'), { type: 'waiting', hostName: 'ana', hostPresent: true, timeoutMs: 600_000 });
    assert.equal(hostPeer.last('knock')?.knock.card, 'Bob');
    assert.equal(media.admitted.has(guest), false, 'nothing forwarded before admission');
    assert.ok(media.connected.has(guest), 'its empty receiving transport connects while it waits');
  });

  it('ends the call for everyone, waiting guests included, when its media fails for good', () => {
    const { room, hostPeer, media } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const bobPeer = new TestPeer();
    const bob = room.join(bobPeer, 'Bob', undefined);
    approve(room, host, bob);
    const cydPeer = new TestPeer();
    room.join(cydPeer, 'Cyd', undefined);
    media.fail!('media_failed');
    for (const peer of [hostPeer, bobPeer, cydPeer]) assert.equal(peer.closedWith, 'media_failed');
    assert.ok(room.isClosed);
    assert.ok(media.closed);
    assert.throws(() => room.join(new TestPeer(), 'Dan', undefined), refusedWith('call_ended'));
  });

  it('drops a waiting guest\'s empty transport when it is declined or leaves, and renews it on restartMedia', () => {
    const { room, hostPeer, media } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const bobPeer = new TestPeer();
    const bob = room.join(bobPeer, 'Bob', undefined);
    room.restartMedia(bob);
    assert.ok(bobPeer.last('mediaRestarted'));
    assert.ok(media.connected.has(bob) && !media.admitted.has(bob), 'still nothing forwarded');
    room.decline(host, bob);
    assert.equal(media.connected.has(bob), false);
    const cyd = room.join(new TestPeer(), 'Cyd', undefined);
    room.leave(cyd);
    assert.equal(media.connected.has(cyd), false);
  });

  it('admits a guest when the host approves: both sides see each other', () => {
    const { room, hostPeer, media } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const guestPeer = new TestPeer();
    const guest = room.join(guestPeer, 'Bob', undefined);
    approve(room, host, guest);
    assert.deepEqual(guestPeer.last('joined')?.participants.map((p) => p.card), ['Ana']);
    assert.equal(hostPeer.last('participantJoined')?.participant.card, 'Bob');
    assert.equal(hostPeer.last('knockGone')?.participantId, guest);
    assert.ok(media.admitted.has(guest));
  });

  it('sends a declined guest away with "declined"', () => {
    const { room, hostPeer } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const guestPeer = new TestPeer();
    const guest = room.join(guestPeer, 'Bob', undefined);
    room.decline(host, guest);
    assert.equal(guestPeer.closedWith, 'declined');
    assert.equal(room.lobbyCount, 0);
  });

  it('refuses approve, decline, remove and end from a guest in the lobby', () => {
    const { room, hostPeer } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const bob = room.join(new TestPeer(), 'Bob', undefined);
    const eve = room.join(new TestPeer(), 'Eve', undefined);
    assert.throws(() => approve(room, eve, bob), refusedWith('not_in_call'));
    assert.throws(() => approve(room, eve, eve), refusedWith('not_in_call'));
    assert.throws(() => room.decline(eve, bob), refusedWith('not_in_call'));
    assert.throws(() => room.remove(eve, host), refusedWith('not_in_call'));
    assert.throws(() => room.end(eve), refusedWith('not_in_call'));
    assert.equal(room.lobbyCount, 2);
  });

  it('connects a waiting guest\'s media but forwards none of it until it is admitted', async () => {
    const { room, hostPeer, media } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const eve = room.join(new TestPeer(), 'Eve', undefined);
    // Its connections come up while it waits (the SFU answers both), and nothing flows on them.
    await room.publish(eve, 'v=0 offer');
    await room.subscribeAnswer(eve, 'v=0 answer');
    assert.deepEqual(media.published, [eve]);
    assert.equal(media.admitted.has(eve), false);
    assert.equal(media.forwarded.has(eve), false);
    assert.throws(() => room.setMediaState(eve, false, false), refusedWith('not_in_call'));
    assert.throws(() => room.setViewport(eve, []), refusedWith('not_in_call'));
    assert.throws(() => room.requestKeyFrame(eve), refusedWith('not_in_call'));
    room.requestKeyFrame(host);
    assert.deepEqual(media.keyFrames, [host], 'a member\'s camera is asked for a key frame; a waiting guest\'s is not');
    // Declined: its transports are gone, and it never sent anything to anyone.
    room.decline(host, eve);
    assert.equal(media.connected.has(eve), false);
    assert.equal(media.forwarded.has(eve), false);
    await assert.rejects(room.publish(eve, 'v=0 offer'), refusedWith('not_in_call'));
  });

  it('forwards what a guest published while waiting once it is let in', async () => {
    const { room, hostPeer, media } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const bob = room.join(new TestPeer(), 'Bob', undefined);
    await room.publish(bob, 'v=0 offer');
    assert.equal(media.forwarded.has(bob), false);
    approve(room, host, bob);
    assert.equal(media.forwarded.has(bob), true);
  });

  it('refuses host-only actions from an admitted guest while the host is there', () => {
    const { room, hostPeer, advance } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const bob = room.join(new TestPeer(), 'Bob', undefined);
    approve(room, host, bob);
    advance(60_000);
    const eve = room.join(new TestPeer(), 'Eve', undefined);
    assert.throws(() => approve(room, bob, eve), refusedWith('not_allowed'));
    assert.throws(() => room.decline(bob, eve), refusedWith('not_allowed'));
    assert.throws(() => room.remove(bob, host), refusedWith('not_allowed'));
    assert.throws(() => room.end(bob), refusedWith('not_allowed'));
    assert.equal(room.admittedCount, 2);
  });

  it('lets a participant admitted 30 s earlier answer knocks while the host is away, not sooner', () => {
    const { room, hostPeer, advance } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const bobPeer = new TestPeer();
    const bob = room.join(bobPeer, 'Bob', undefined);
    approve(room, host, bob);
    room.leave(host);
    const eve = room.join(new TestPeer(), 'Eve', undefined);
    assert.throws(() => approve(room, bob, eve), refusedWith('not_allowed'));
    advance(30_000);
    assert.equal(room.mayApprove(bob), true);
    approve(room, bob, eve);
    assert.equal(room.admittedCount, 2);
    // Still, only the host may remove or end.
    assert.throws(() => room.remove(bob, eve), refusedWith('not_allowed'));
    assert.throws(() => room.end(bob), refusedWith('not_allowed'));
  });

  it('lets the host remove a guest, who is told so, and the others see them leave', () => {
    const { room, hostPeer } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const bobPeer = new TestPeer();
    const bob = room.join(bobPeer, 'Bob', undefined);
    approve(room, host, bob);
    room.remove(host, bob);
    assert.equal(bobPeer.closedWith, 'removed');
    assert.equal(hostPeer.last('participantLeft')?.participantId, bob);
    assert.throws(() => room.remove(host, host), refusedWith('participant_not_found'));
  });

  it('ends the call for everyone, waiting guests included, when the host ends it', () => {
    const { room, hostPeer, media } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const bobPeer = new TestPeer();
    approve(room, host, room.join(bobPeer, 'Bob', undefined));
    const evePeer = new TestPeer();
    room.join(evePeer, 'Eve', undefined);
    room.end(host);
    assert.equal(hostPeer.closedWith, 'call_ended');
    assert.equal(bobPeer.closedWith, 'call_ended');
    assert.equal(evePeer.closedWith, 'call_ended');
    assert.ok(media.closed);
    assert.throws(() => room.join(new TestPeer(), 'Late', undefined), refusedWith('call_ended'));
  });

  it('keeps a guest waiting when no host is there, says so, and gives up after the bound', async () => {
    const { room } = setup({ knockTimeoutMs: 50 });
    const guestPeer = new TestPeer();
    room.join(guestPeer, 'Bob', undefined);
    assert.equal(guestPeer.last('waiting')?.hostPresent, false);
    assert.equal(room.admittedCount, 0, 'a guest can never start a call');
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(guestPeer.closedWith, 'host_absent');
  });

  it('tells a waiting guest when the host arrives', () => {
    const { room, hostPeer } = setup();
    const guestPeer = new TestPeer();
    room.join(guestPeer, 'Bob', undefined);
    room.join(hostPeer, 'Ana', 'owner');
    assert.equal(guestPeer.last('waiting')?.hostPresent, true);
    assert.equal(hostPeer.last('joined')?.knocks[0]?.card, 'Bob');
  });

  it('refuses more than the participant cap: the extra guest is told the call is full', () => {
    const { room, hostPeer } = setup({ maxParticipants: 2 });
    const host = room.join(hostPeer, 'Ana', 'owner');
    approve(room, host, room.join(new TestPeer(), "Bob", undefined));
    const evePeer = new TestPeer();
    // The approver is told too (its Add commit was not relayed), and Eve is told why.
    assert.throws(() => approve(room, host, room.join(evePeer, 'Eve', undefined)), refusedWith('call_full'));
    assert.equal(evePeer.closedWith, 'call_full');
    assert.equal(room.admittedCount, 2);
  });

  it('caps the lobby', () => {
    const { room } = setup({ maxLobby: 2 });
    room.join(new TestPeer(), 'A', undefined);
    room.join(new TestPeer(), 'B', undefined);
    assert.throws(() => room.join(new TestPeer(), 'C', undefined), refusedWith('lobby_full'));
  });

  it('a flood of knocks connects media for at most lobbyMediaSlots guests; a guest past the cap gets media once admitted', async () => {
    const { room, hostPeer, media } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    const guests = Array.from({ length: 12 }, (_, i) => {
      const peer = new TestPeer();
      return { peer, id: room.join(peer, `Guest ${i}`, undefined) };
    });
    assert.equal(media.connected.size, 4, 'media transports for 4 of 12 waiting guests');
    const last = guests.at(-1)!;
    assert.equal(media.connected.has(last.id), false);
    // A guest without a slot publishes while it waits, as every page does: its offer waits too.
    await room.publish(last.id, 'v=0 offer');
    assert.equal(last.peer.last('publishAnswer'), undefined, 'no SFU transport for its offer yet');
    assert.deepEqual(media.published, []);

    approve(room, host, last.id);
    await new Promise((r) => setImmediate(r));
    assert.ok(media.admitted.has(last.id), 'admitted: it gets its transports now');
    assert.equal(last.peer.last('publishAnswer')?.sdp, 'v=0 answer', 'its held offer is answered');
    assert.ok(media.forwarded.has(last.id), 'and what it sends reaches the call');

    // A slot that comes free goes to the guest who knocked last among those still without one.
    room.decline(host, guests[0]!.id);
    assert.equal(media.connected.size, 4);
    assert.ok(media.connected.has(guests.at(-2)!.id));
    room.restartMedia(guests[5]!.id);
    assert.equal(media.connected.has(guests[5]!.id), false, 'a restart does not get a guest past the cap');
  });

  it('refuses approving someone who is not waiting', () => {
    const { room, hostPeer } = setup();
    const host = room.join(hostPeer, 'Ana', 'owner');
    assert.throws(() => approve(room, host, 'nobody'), refusedWith('participant_not_found'));
  });
});

describe('Room: coming back after a lost connection', () => {
  function inCall(limits = {}) {
    const ctx = setup(limits);
    const hostId = ctx.room.join(ctx.hostPeer, 'hostcard', 'owner');
    const guestPeer = new TestPeer();
    const guestId = ctx.room.join(guestPeer, 'guestcard', undefined);
    approve(ctx.room, hostId, guestId);
    const token = guestPeer.last('resumable')!.token;
    return { ...ctx, hostId, guestId, guestPeer, token };
  }

  it('keeps a dropped participant in the call, shown as reconnecting, and takes it back as the same participant', () => {
    const { room, hostPeer, hostId, guestId, guestPeer, token } = inCall();
    room.disconnected(guestId, guestPeer);
    assert.equal(hostPeer.last('participantUpdated')?.participant.reconnecting, true);
    assert.equal(hostPeer.last('participantLeft'), undefined);
    assert.equal(room.admittedCount, 2);

    // While it is away, a commit changes the group: it must not be lost.
    room.commit(hostId, room.commitSlot, COMMIT);
    const back = new TestPeer();
    assert.equal(room.resume(back, token, guestPeer.received), guestId);
    assert.deepEqual(back.messages.map((m) => m.type), ['resumed', 'handshake']);
    assert.equal(hostPeer.last('participantUpdated')?.participant.reconnecting, false);
    // And it acts as itself again: no new knock reached the host.
    assert.equal(hostPeer.messages.filter((m) => m.type === 'knock').length, 1);
    room.setMediaState(guestId, false, true);
    assert.equal(hostPeer.last('participantUpdated')?.participant.audio, false);
  });

  it('replays what was in flight when the connection died', () => {
    const { room, hostId, guestId, guestPeer, token } = inCall();
    const receivedBeforeLoss = guestPeer.received;
    room.commit(hostId, room.commitSlot, COMMIT); // sent into a socket that was already dead
    room.disconnected(guestId, guestPeer);
    const back = new TestPeer();
    room.resume(back, token, receivedBeforeLoss);
    assert.deepEqual(back.messages.map((m) => m.type), ['resumed', 'handshake']);
  });

  it('replaces a connection that still looks open when the participant comes back on a new one', () => {
    const { room, guestId, guestPeer, token } = inCall();
    const back = new TestPeer();
    room.resume(back, token, guestPeer.received);
    assert.equal(guestPeer.detached, true);
    // The old connection closing later changes nothing.
    room.disconnected(guestId, guestPeer);
    assert.equal(room.admittedCount, 2);
  });

  it('lets the participant go after the grace period: the others see it leave and its token stops working', async () => {
    const { room, hostPeer, guestId, guestPeer, token } = inCall({ resumeGraceMs: 20 });
    room.disconnected(guestId, guestPeer);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(hostPeer.last('participantLeft')?.participantId, guestId);
    assert.throws(() => room.resume(new TestPeer(), token, guestPeer.received), refusedWith('resume_failed'));
  });

  it('refuses unknown tokens and impossible message counts', () => {
    const { room, guestPeer, token } = inCall();
    assert.throws(() => room.resume(new TestPeer(), 'x'.repeat(22), 0), refusedWith('resume_failed'));
    assert.throws(() => room.resume(new TestPeer(), token, guestPeer.received + 5), refusedWith('resume_failed'));
  });

  it('keeps a waiting guest\'s knock while its connection is away', () => {
    const { room, hostPeer } = setup();
    const hostId = room.join(hostPeer, 'hostcard', 'owner');
    const guestPeer = new TestPeer();
    const guestId = room.join(guestPeer, 'guestcard', undefined);
    const token = guestPeer.last('resumable')!.token;
    room.disconnected(guestId, guestPeer);
    approve(room, hostId, guestId);
    const back = new TestPeer();
    room.resume(back, token, guestPeer.received);
    assert.deepEqual(back.messages.map((m) => m.type), ['resumed', 'joined']);
  });

  it('gives a participant whose media failed fresh transports', () => {
    const { room, media, guestId } = inCall();
    room.restartMedia(guestId);
    assert.ok(media.admitted.has(guestId));
  });

  it('takes back a participant of a call whose node was lost: same id and role, admitted, announced as returning', () => {
    const { room, hostPeer } = setup();
    room.join(hostPeer, 'hostcard', 'owner');
    const back = new TestPeer();
    const id = room.adopt(back, 'T'.repeat(22), { participantId: 'bo-1', role: 'guest', card: 'bocard', since: 5 }, 7);
    assert.equal(id, 'bo-1');
    assert.deepEqual(back.messages.map((m) => m.type).slice(0, 2), ['resumed', 'joined']);
    const joined = hostPeer.last('participantJoined');
    assert.equal(joined?.participant.id, 'bo-1');
    assert.equal(joined?.returning, true);
    assert.equal(hostPeer.last('knock'), undefined, 'no knock');
    // The same token cannot be used to make a second copy.
    assert.throws(() => room.adopt(new TestPeer(), 'T'.repeat(22), { participantId: 'bo-2', role: 'guest', card: 'x', since: 5 }, 0), refusedWith('resume_failed'));
  });

  describe('commit order', () => {
    it('relays a commit to every member, sender included, and gives the slot to the first commit only', () => {
      const { room, hostPeer, hostId, guestId, guestPeer } = (() => {
        const ctx = setup();
        const hostId = ctx.room.join(ctx.hostPeer, 'hostcard', 'owner');
        const guestPeer = new TestPeer();
        const guestId = ctx.room.join(guestPeer, 'guestcard', undefined);
        approve(ctx.room, hostId, guestId);
        return { ...ctx, hostId, guestId, guestPeer };
      })();
      assert.equal(guestPeer.last('joined')?.welcome, WELCOME);
      assert.equal(guestPeer.last('joined')?.slot, 1, 'the newcomer learns the next slot');
      const slot = room.commitSlot;
      room.commit(guestId, slot, 'Rmlyc3Q');
      assert.throws(() => room.commit(hostId, slot, 'U2Vjb25k'), refusedWith('commit_conflict'));
      for (const peer of [hostPeer, guestPeer]) {
        assert.deepEqual(
          peer.messages.filter((m) => m.type === 'handshake').map((m) => m.type === 'handshake' && [m.slot, m.commit]),
          peer === hostPeer ? [[0, COMMIT], [1, 'Rmlyc3Q']] : [[1, 'Rmlyc3Q']],
        );
      }
    });

    it('refuses a Welcome for someone who is not in the call', () => {
      const ctx = setup();
      const hostId = ctx.room.join(ctx.hostPeer, 'hostcard', 'owner');
      const waiting = ctx.room.join(new TestPeer(), 'guestcard', undefined);
      assert.throws(() => ctx.room.commit(hostId, ctx.room.commitSlot, COMMIT, WELCOME, waiting), refusedWith('participant_not_found'));
      assert.equal(ctx.room.commitSlot, 0, 'a refused commit takes no slot');
    });
  });

  describe('lock', () => {
    it('a locked call refuses new knocks with a sentence, keeps those already waiting, and reopens when unlocked; only the host may lock', () => {
      const { room, hostPeer } = setup();
      const host = room.join(hostPeer, 'hostcard', 'owner');
      const waitingPeer = new TestPeer();
      const waiting = room.join(waitingPeer, 'waitingcard', undefined);
      room.lock(host, true);
      assert.equal(hostPeer.last('locked')?.locked, true);
      assert.throws(() => room.join(new TestPeer(), 'latecard', undefined), refusedWith('call_locked'));
      assert.equal(room.lobbyCount, 1, 'the guest already waiting stays');
      approve(room, host, waiting);
      assert.equal(waitingPeer.last('joined')?.locked, true, 'and learns the call is locked once in');
      assert.throws(() => room.lock(waiting, false), refusedWith('not_allowed'));
      room.lock(host, false);
      room.join(new TestPeer(), 'latecard', undefined);
      assert.equal(room.lobbyCount, 1);
    });
  });
});
