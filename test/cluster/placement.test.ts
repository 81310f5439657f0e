/** Where calls live in a cluster: the directory in a real redis-server, with nodes whose load the test sets. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ClusterDirectory, type NodeLoad } from '../../src/server/cluster/directory.js';
import { relayProof, verifyRelayProof } from '../../src/server/cluster/relay.js';
import { startRedis, type TestRedis } from '../support/redis.js';

const quiet = { warn() {} };
let n = 0;
const linkId = () => `link${String(++n).padStart(18, '0')}`;

describe('the cluster directory (Redis)', { timeout: 60_000 }, () => {
  let redis: TestRedis;
  const directories: ClusterDirectory[] = [];
  const loads = new Map<string, NodeLoad>();

  async function node(id: string, capacity = 1): Promise<ClusterDirectory> {
    loads.set(id, { rooms: 0, participants: 0, draining: false, linkIds: [] });
    const d = new ClusterDirectory(redis.url, { id, capacity }, () => loads.get(id)!, quiet);
    await d.start(`http://127.0.0.1:1/${id}`);
    directories.push(d);
    return d;
  }

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const d of directories) await d.stop();
    await redis?.close();
  });

  it('places a new call on the least loaded node for its capacity, and keeps it there', async () => {
    const a = await node('a');
    await node('b');
    await node('c', 4);
    loads.set('a', { rooms: 1, participants: 5, draining: false, linkIds: [] });
    loads.set('b', { rooms: 1, participants: 1, draining: false, linkIds: [] });
    loads.set('c', { rooms: 2, participants: 10, draining: false, linkIds: [] }); // (12 + 1) / 4 = 3.25
    await new Promise((r) => setTimeout(r, 1200)); // a heartbeat reports the loads
    const first = linkId();
    assert.equal((await a.homeOf(first))?.id, 'b', 'b: (2 + 1) / 1 = 3');
    assert.equal((await a.homeOf(first))?.id, 'b', 'the same call stays on its node');
    const nodes = await a.nodes();
    assert.deepEqual(nodes.map((x) => x.id).sort(), ['a', 'b', 'c']);
    assert.equal(nodes.find((x) => x.id === 'c')?.capacity, 4);
  });

  it('spreads a burst of new calls before the next heartbeat (each placement counts at once)', async () => {
    const [a] = directories;
    const homes = [];
    for (let i = 0; i < 6; i++) homes.push((await a!.homeOf(linkId()))!.id);
    assert.ok(new Set(homes).size >= 2, `not all on one node: ${homes.join(',')}`);
  });

  it('never starts a call on a draining node; a call already there stays', async () => {
    const [a] = directories;
    const existing = linkId();
    loads.set('d', { rooms: 0, participants: 0, draining: false, linkIds: [] });
    const d = await node('d', 1000);
    assert.equal((await a!.homeOf(existing))?.id, 'd');
    loads.set('d', { rooms: 1, participants: 1, draining: true, linkIds: [existing] });
    await new Promise((r) => setTimeout(r, 1200));
    assert.notEqual((await a!.homeOf(linkId()))?.id, 'd', 'no new call on a draining node');
    assert.equal((await a!.homeOf(existing))?.id, 'd', 'its running call stays');
    await d.stop();
    directories.splice(directories.indexOf(d), 1);
    assert.notEqual((await a!.homeOf(existing))?.id, 'd', 'a node that left gets no calls');
  });

  it('re-homes the calls of a node whose heartbeat stopped, within 3 s; at once when a node found it unreachable', async () => {
    const [a] = directories;
    const e = await node('e', 1000);
    const call = linkId();
    assert.equal((await a!.homeOf(call))?.id, 'e');
    assert.notEqual((await a!.homeOf(call, 'e'))?.id, 'e', 'avoiding an unreachable node places the call elsewhere');
    const other = linkId();
    assert.equal((await a!.homeOf(other))?.id, 'e');
    // A crash: the heartbeat stops, nothing is cleaned up.
    clearInterval((e as unknown as { heartbeat: NodeJS.Timeout }).heartbeat);
    e.redis.disconnect();
    directories.splice(directories.indexOf(e), 1);
    await new Promise((r) => setTimeout(r, 3100));
    const home = await a!.homeOf(other);
    assert.ok(home && home.id !== 'e', 'moved to a live node');
  });

  it('remembers which call a resume token belongs to, stored hashed', async () => {
    const [a] = directories;
    const call = linkId();
    await a!.rememberResumeToken('a-resume-token-of-a-participant', { linkId: call, callId: 'call-1' });
    assert.equal(await a!.linkOfResumeToken('a-resume-token-of-a-participant'), call);
    assert.equal(await a!.linkOfResumeToken('another-token'), undefined);
    assert.deepEqual(await a!.redis.keys('*a-resume-token*'), [], 'the token itself is not a key');
  });

  it('relay proofs verify only with the cluster secret, for the same client address, until they expire', () => {
    const proof = relayProof('cluster-secret-16+', 'a', '203.0.113.7', 1_000_000);
    assert.equal(verifyRelayProof('cluster-secret-16+', proof, '203.0.113.7', 1_000_000), true);
    assert.equal(verifyRelayProof('another-secret-16+', proof, '203.0.113.7', 1_000_000), false);
    assert.equal(verifyRelayProof('cluster-secret-16+', proof, '198.51.100.1', 1_000_000), false);
    assert.equal(verifyRelayProof('cluster-secret-16+', proof, '203.0.113.7', 1_000_000 + 60_000), false);
    assert.equal(verifyRelayProof('cluster-secret-16+', 'garbage', '203.0.113.7', 1_000_000), false);
  });
});
