/**
 * A guest behind a firewall that drops all UDP still gets a call: through coturn (in a namespace
 * of its own, `use-auth-secret`, short-lived credentials from linkcall) reached over TCP on 3478,
 * or over TLS on 443 with a certificate this test makes. The page is given TURN over UDP as well
 * and falls back by itself; the host, whose UDP is open, keeps its direct path. The guest's
 * selected pairs must be relayed over the expected protocol. `npx tsx bench/network.ts
 * --scenario udp-blocked` measures Approve → first frame for each path. Skips, saying why, where
 * namespaces cannot be made.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { linkcallCall, type LabCall } from '../support/lab-call.js';
import { startLabCoturn, type LabCoturn } from '../support/lab-coturn.js';
import { labUnavailable, NetLab } from '../support/netlab.js';
import { mediaPaths, type PathInfo } from '../support/peer-connections.js';

const unavailable = labUnavailable();
if (unavailable) console.log(`# network lab skipped: ${unavailable}`);

describe('TURN over TCP and TLS in the network lab', { skip: unavailable, timeout: 300_000 }, () => {
  let lab: NetLab;
  let coturn: LabCoturn;
  before(async () => {
    lab = await NetLab.create(['server', 'turn', 'host', 'guest']);
    coturn = await startLabCoturn(lab, 'turn');
  });
  after(async () => {
    await coturn?.close();
    await lab?.close();
  });

  /** Every connected media connection of the page, once the publishing and the receiving one are both up. */
  async function connectedPaths(call: LabCall, who: 'host' | 'guest'): Promise<PathInfo> {
    let paths = await mediaPaths(call.pages[who]);
    for (let tries = 0; tries < 40 && paths.selected.length < 2; tries++) {
      await call.pages[who].waitForTimeout(500);
      paths = await mediaPaths(call.pages[who]);
    }
    return paths;
  }

  /** A call with the server handing out `turnUrls`, the guest's UDP dropped both ways. */
  async function callWithUdpBlocked(turnUrls: string[], expected: 'tcp' | 'tls'): Promise<void> {
    await lab.clear();
    await lab.impair('guest', 'both', { blockUdp: true });
    const server = await lab.startServer('server', { TURN_URLS: turnUrls.join(','), TURN_SECRET: coturn.secret });
    let call: LabCall | undefined;
    try {
      call = await linkcallCall(lab, server, 60_000, { chromiumArgs: [coturn.chromiumTrust] });
      const guest = await connectedPaths(call, 'guest');
      assert.ok(guest.selected.length >= 2, `the guest's publishing and receiving connections are up (${JSON.stringify(guest.selected)})`);
      for (const pair of guest.selected) {
        assert.equal(pair.local, 'relay', `the guest's media goes through coturn: ${JSON.stringify(pair)}`);
        assert.equal(pair.relayProtocol, expected, `the guest reaches coturn over ${expected}: ${JSON.stringify(pair)}`);
      }
      const host = await connectedPaths(call, 'host');
      for (const pair of host.selected) assert.equal(pair.local, 'host', `the host, UDP open, stays direct: ${JSON.stringify(pair)}`);
      const stats = await lab.stats();
      assert.ok(stats.guest!.up.udpDrops > 0, 'the guest did try UDP, and the link dropped it');
      assert.ok(call.approveToFirstFrameMs !== undefined && call.approveToFirstFrameMs > 0, 'the first frame after Approve was seen');
      console.log(`# TURN over ${expected}: Approve → first frame ${call.approveToFirstFrameMs!.toFixed(0)} ms`);
    } catch (err) {
      throw new Error(`${(err as Error).message}\ncoturn said: ${coturn.output().slice(-1500)}`);
    } finally {
      await call?.close();
      await server.close();
    }
  }

  test('a guest whose link drops all UDP plays the host video through TURN over TCP', async () => {
    await callWithUdpBlocked([coturn.urls.udp, coturn.urls.tcp], 'tcp');
  });

  test('a guest whose link drops all UDP plays the host video through TURN over TLS on port 443 (turns:)', async () => {
    await callWithUdpBlocked([coturn.urls.udp, coturn.urls.tls], 'tls');
  });
});
