/**
 * A server behind NAT, as most cloud machines are: in the lab the server's namespace sits behind
 * a 1:1 NAT the link emulator does (this kernel has no iptables/nft), so browsers reach it only at
 * its public address, never at the address it binds. With MEDIA_ANNOUNCED_ADDRESS set to the
 * public address and MEDIA_PORTS to a range, a call works from both clients, their media goes to
 * the public address on a port of the range, and every UDP socket the server process holds is in
 * the range (libjuice's, and the relay entrances', TURN being configured). Skips, saying why,
 * where namespaces cannot be made.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { linkcallCall, PEOPLE, type LabCall } from '../support/lab-call.js';
import { startLabCoturn, type LabCoturn } from '../support/lab-coturn.js';
import { labUnavailable, NetLab, type LabServer } from '../support/netlab.js';
import { mediaPaths, type PathInfo } from '../support/peer-connections.js';

const unavailable = labUnavailable();
if (unavailable) console.log(`# network lab skipped: ${unavailable}`);

const PUBLIC_ADDRESS = '10.99.1.1';
const PORTS = { begin: 47100, end: 47199 };

/** Local UDP ports the process `pid` has open in namespace `ns`, with their addresses. */
function udpSockets(ns: string, pid: number): { address: string; port: number }[] {
  const out = execFileSync('ip', ['netns', 'exec', ns, 'ss', '-u', '-a', '-n', '-p', '-H'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((line) => line.includes(`pid=${pid},`))
    .map((line) => {
      const local = line.trim().split(/\s+/)[3]!;
      const at = local.lastIndexOf(':');
      return { address: local.slice(0, at), port: Number(local.slice(at + 1)) };
    });
}

describe('a server behind NAT in the network lab', { skip: unavailable, timeout: 240_000 }, () => {
  let lab: NetLab;
  let coturn: LabCoturn;
  let server: LabServer;
  before(async () => {
    lab = await NetLab.create(['server', 'turn', 'host', 'guest']);
    await lab.nat('server', PUBLIC_ADDRESS);
    coturn = await startLabCoturn(lab, 'turn');
    server = await lab.startServer('server', {
      MEDIA_ANNOUNCED_ADDRESS: PUBLIC_ADDRESS,
      MEDIA_PORTS: `${PORTS.begin}-${PORTS.end}`,
      TURN_URLS: coturn.urls.udp,
      TURN_SECRET: coturn.secret,
    });
  });
  after(async () => {
    await server?.close();
    await coturn?.close();
    await lab?.close();
  });

  test('a call works from both clients through the public address, on ports of MEDIA_PORTS', async () => {
    // Browsers know the server only by its public address.
    const publicUrl = server.url.replace(lab.address('server'), PUBLIC_ADDRESS);
    let call: LabCall | undefined;
    try {
      call = await linkcallCall(lab, { ...server, url: publicUrl }, 60_000);
      for (const person of PEOPLE) {
        let paths: PathInfo = await mediaPaths(call.pages[person]);
        for (let tries = 0; tries < 40 && paths.selected.length < 2; tries++) {
          await call.pages[person].waitForTimeout(500);
          paths = await mediaPaths(call.pages[person]);
        }
        assert.ok(paths.selected.length >= 2, `${person}'s publishing and receiving connections are up`);
        for (const pair of paths.selected) {
          assert.equal(pair.local, 'host', `${person} sends directly over UDP: ${JSON.stringify(pair)}`);
          assert.equal(pair.remoteAddress, PUBLIC_ADDRESS, `${person}'s media goes to the announced address: ${JSON.stringify(pair)}`);
          assert.ok(pair.remotePort! >= PORTS.begin && pair.remotePort! <= PORTS.end, `${person}'s media goes to a port in MEDIA_PORTS: ${JSON.stringify(pair)}`);
        }
      }
      // Loopback sockets (a relay entrance's inner side) face no firewall; every other one must.
      const sockets = udpSockets(lab.namespace('server'), server.pid).filter((s) => s.address !== '127.0.0.1');
      // Two media connections per person, each with libjuice's socket and a relay entrance.
      assert.ok(sockets.length >= 8, `the SFU holds its media sockets: ${JSON.stringify(sockets)}`);
      for (const s of sockets) {
        assert.equal(s.address, lab.address('server'), `bound to MEDIA_ADDRESS: ${JSON.stringify(s)}`);
        assert.ok(s.port >= PORTS.begin && s.port <= PORTS.end, `socket ${s.address}:${s.port} lies in MEDIA_PORTS ${PORTS.begin}-${PORTS.end}`);
      }
    } finally {
      await call?.close();
    }
  });
});
