/**
 * Ways into a call without anyone's ✓, through the cluster's resume records and node-to-node
 * notices: three nodes (calls placed on c, clients on a and b), Redis and PostgreSQL, and Node
 * clients speaking the signaling protocol as a browser or an attacker would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import type { ServerMessage } from '../../src/protocol/messages.js';
import { startCluster, type TestCluster } from '../support/cluster.js';

type Message = ServerMessage & Record<string, unknown>;

/** One signaling connection to a node, keeping every message it got. */
class Client {
  readonly messages: Message[] = [];
  readonly closed: Promise<number>;
  private readonly waiters: (() => void)[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.messages.push(JSON.parse(String(d)) as Message);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  }

  static async open(nodeUrl: string, cookie?: string): Promise<Client> {
    const ws = new WebSocket(nodeUrl.replace(/^http/, 'ws') + '/ws', { headers: cookie ? { cookie } : {} });
    const client = new Client(ws);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return client;
  }

  send(message: object): void {
    this.ws.send(JSON.stringify(message));
  }

  /** The first message of `type` (already received or still to come). */
  async next<T extends ServerMessage['type']>(type: T, timeoutMs = 15_000): Promise<Extract<ServerMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find((m) => m.type === type);
      if (found) return found as Extract<ServerMessage, { type: T }>;
      if (Date.now() > deadline) throw new Error(`no ${type} within ${timeoutMs} ms; got ${this.messages.map((m) => m.type).join(',')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  /** Counted room messages so far (what a client reports as `received` when it resumes). */
  get received(): number {
    return this.messages.filter((m) => !['pong', 'error', 'closed', 'resumed', 'shutdown'].includes(m.type)).length;
  }

  /** The connection drops without a close (a network loss): the participant's place is held for the grace. */
  drop(): void {
    this.ws.terminate();
  }
}

const CARD = 'A'.repeat(40);
/** The room relays commits and Welcomes unread; any well-formed bytes will do here. */
const MLS = { commit: 'Q29tbWl0', welcome: 'V2VsY29tZQ' };

describe('the cluster opens no back doors', { timeout: 240_000 }, () => {
  let cluster: TestCluster;
  const node = (id: string) => cluster.nodes.find((n) => n.id === id)!;

  before(async () => {
    cluster = await startCluster({ nodes: [{ id: 'a' }, { id: 'b' }, { id: 'c', capacity: 100 }] });
  });
  after(async () => {
    await cluster?.close();
  });

  async function signUp(username: string): Promise<string> {
    const res = await fetch(`${node('a').url}/api/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: 'correct horse battery' }),
    });
    assert.equal(res.status, 201);
    return res.headers.get('set-cookie')!.split(';')[0]!;
  }

  async function createLink(cookie: string): Promise<string> {
    const res = await fetch(`${node('a').url}/api/links`, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: '{}' });
    assert.equal(res.status, 201);
    return ((await res.json()) as { id: string }).id;
  }

  /** The host enters through node a, a guest knocks through node b and is let in. */
  async function callOfTwo(cookie: string, linkId: string) {
    const host = await Client.open(node('a').url, cookie);
    host.send({ type: 'join', linkId, card: CARD });
    const hostJoined = await host.next('joined');
    const hostId = hostJoined.you.id;
    const guest = await Client.open(node('b').url);
    guest.send({ type: 'join', linkId, card: CARD });
    await guest.next('waiting');
    const knock = await host.next('knock');
    host.send({ type: 'approve', participantId: knock.knock.id, slot: hostJoined.slot, ...MLS });
    const joined = await guest.next('joined');
    assert.equal(joined.you.role, 'guest');
    return { host, hostId, guest, guestId: joined.you.id };
  }

  it('deleting a link ends its call on every node: the DELETE reached node a, the call lives on c', async () => {
    const cookie = await signUp('dora');
    const linkId = await createLink(cookie);
    const { host, guest } = await callOfTwo(cookie, linkId);
    const res = await fetch(`${node('a').url}/api/links/${linkId}`, { method: 'DELETE', headers: { cookie } });
    assert.equal(res.status, 204);
    assert.equal((await host.next('closed', 5000)).code, 'link_deleted');
    assert.equal((await guest.next('closed', 5000)).code, 'link_deleted');
  });

  it('a refused join for another link does not file a resume token under it: no second host in that call', async () => {
    const victim = await signUp('vera');
    const victimLink = await createLink(victim);
    const { host } = await callOfTwo(victim, victimLink);

    const mallory = await signUp('mallory');
    const ownLink = await createLink(mallory);
    const attacker = await Client.open(node('a').url, mallory);
    // The first frame names the victim's link (and is refused: the card is not base64url)…
    attacker.send({ type: 'join', linkId: victimLink, card: '<not a card>' });
    assert.equal((await attacker.next('error')).code, 'bad_message');
    // …then the attacker enters its own link as its host, and drops the connection.
    attacker.send({ type: 'join', linkId: ownLink, card: CARD });
    const token = (await attacker.next('resumable')).token;
    assert.equal((await attacker.next('joined')).you.role, 'host');
    const received = attacker.received;
    attacker.drop();
    // Past the resume grace (30 s), from another node.
    await new Promise((r) => setTimeout(r, 31_000));
    const back = await Client.open(node('b').url, mallory);
    back.send({ type: 'resume', token, received });
    const closed = await back.next('closed');
    assert.equal(back.messages.some((m) => m.type === 'resumed' || m.type === 'joined'), false, 'not taken back anywhere');
    assert.ok(['left', 'resume_failed'].includes(closed.code), `told its time ended: ${closed.code}`);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(host.messages.some((m) => m.type === 'participantJoined'), true, 'the victim saw its guest join');
    assert.equal(host.messages.filter((m) => m.type === 'participantJoined').length, 1, 'and no one else: no second host');
  });

  it('a removed participant cannot come back through another node when the call\'s node is gone, nor two minutes later; the host still can', async () => {
    const cookie = await signUp('rita');
    const linkId = await createLink(cookie);
    const { host, guest, guestId } = await callOfTwo(cookie, linkId);
    const guestToken = (await guest.next('resumable')).token;
    const hostToken = (await host.next('resumable')).token;
    host.send({ type: 'remove', participantId: guestId });
    assert.equal((await guest.next('closed')).code, 'removed');
    await host.next('participantLeft');
    const guestReceived = guest.received;
    const hostReceived = host.received;

    // The call's node dies; both come back through node a.
    node('c').kill();
    await host.closed;
    const removed = await Client.open(node('a').url);
    removed.send({ type: 'resume', token: guestToken, received: guestReceived });
    assert.equal((await removed.next('closed')).code, 'removed', 'told it was removed');
    assert.equal(removed.messages.some((m) => m.type === 'resumed' || m.type === 'joined'), false, 'not let back in');

    // Two minutes later the note of why has expired (its TTL; here deleted, as the TTL would):
    // the token is simply unknown, and still lets nobody in.
    const redis = new Redis(cluster.redisUrl);
    await redis.del(`linkcall:resume:${createHash('sha256').update(guestToken).digest('base64url')}`);
    redis.disconnect();
    const later = await Client.open(node('b').url);
    later.send({ type: 'resume', token: guestToken, received: guestReceived });
    assert.equal((await later.next('closed')).code, 'resume_failed', 'an unknown token, after the note expired');
    assert.equal(later.messages.some((m) => m.type === 'resumed' || m.type === 'joined'), false, 'not let back in two minutes later either');

    const back = await Client.open(node('a').url, cookie);
    back.send({ type: 'resume', token: hostToken, received: hostReceived });
    await back.next('resumed');
    const joined = await back.next('joined');
    assert.equal(joined.you.role, 'host', 'the host is taken back on a live node');
    assert.deepEqual(joined.participants, [], 'alone: the removed guest is not there');
  });
});
