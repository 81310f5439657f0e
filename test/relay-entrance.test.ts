/**
 * The relay entrance (src/server/media/relay-entrance.ts) and the candidate rewriting around it:
 * checks with Chromium's zero tie-breaker reach the ICE agent repaired and correctly signed,
 * responses name the browser's own address, strangers open nothing, and the SFU's candidates
 * carry the announced address.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { announceCandidates, localIce } from '../src/server/media/candidates.js';
import { RelayEntrance } from '../src/server/media/relay-entrance.js';
import { repairRelayedCheck, rewriteMappedAddress, stunType, verifyIntegrity } from '../src/server/media/stun.js';

const PASSWORD = 'sfu-ice-password-0123456789';

function attr(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
}

/** A signed STUN message as an ICE agent makes it: attributes, MESSAGE-INTEGRITY, FINGERPRINT. */
function stun(type: number, attributes: Buffer[], password: string): Buffer {
  const transaction = Buffer.from('0123456789ab');
  const header = (bodyLength: number) => {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(bodyLength, 2);
    h.writeUInt32BE(0x2112a442, 4);
    transaction.copy(h, 8);
    return h;
  };
  let body = Buffer.concat(attributes);
  const mac = createHmac('sha1', password).update(header(body.length + 24)).update(body).digest();
  body = Buffer.concat([body, attr(0x0008, mac)]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE((crc32(Buffer.concat([header(body.length + 8), body])) ^ 0x5354554e) >>> 0);
  body = Buffer.concat([body, attr(0x8028, crc)]);
  return Buffer.concat([header(body.length), body]);
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** A binding request as Chromium sends it through a TURN server over TCP: tie-breaker 0. */
function relayedCheck(password = PASSWORD, tieBreaker = Buffer.alloc(8)): Buffer {
  return stun(0x0001, [attr(0x0006, Buffer.from('sfu:brws')), attr(0xc057, u32(999)), attr(0x8029, tieBreaker), attr(0x0024, u32(0x6e001fff))], password);
}

function attributeValue(msg: Buffer, type: number): Buffer | undefined {
  for (let at = 20; at + 4 <= msg.length; ) {
    const t = msg.readUInt16BE(at);
    const len = msg.readUInt16BE(at + 2);
    if (t === type) return msg.subarray(at + 4, at + 4 + len);
    at += 4 + len + ((4 - (len % 4)) % 4);
  }
  return undefined;
}

function fingerprintValid(msg: Buffer): boolean {
  const fp = msg.length - 8;
  return msg.readUInt16BE(fp) === 0x8028 && msg.readUInt32BE(fp + 4) === ((crc32(msg.subarray(0, fp)) ^ 0x5354554e) >>> 0);
}

function xorMapped(msg: Buffer): string {
  const v = attributeValue(msg, 0x0020)!;
  const port = v.readUInt16BE(2) ^ 0x2112;
  const ip = (v.readUInt32BE(4) ^ 0x2112a442) >>> 0;
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}:${port}`;
}

function mappedResponse(address: string, port: number): Buffer {
  const v = Buffer.alloc(8);
  v[1] = 1;
  v.writeUInt16BE(port ^ 0x2112, 2);
  const [a, b, c, d] = address.split('.').map(Number) as [number, number, number, number];
  v.writeUInt32BE((((a << 24) | (b << 16) | (c << 8) | d) ^ 0x2112a442) >>> 0, 4);
  return stun(0x0101, [attr(0x0020, v)], PASSWORD);
}

describe('relayed connectivity checks', () => {
  it('a check with a zero tie-breaker gets 1 and a new priority, and still verifies with the connection password', () => {
    const msg = relayedCheck();
    assert.equal(stunType(msg), 0x0001);
    assert.ok(verifyIntegrity(msg, PASSWORD) && fingerprintValid(msg), 'the test builds valid messages');
    assert.equal(repairRelayedCheck(msg, PASSWORD, 2130706431), true);
    assert.equal(attributeValue(msg, 0x8029)!.readBigUInt64BE(), 1n);
    assert.equal(attributeValue(msg, 0x0024)!.readUInt32BE(), 2130706431);
    assert.ok(verifyIntegrity(msg, PASSWORD), 'MESSAGE-INTEGRITY recomputed');
    assert.ok(fingerprintValid(msg), 'FINGERPRINT recomputed');
    assert.equal(verifyIntegrity(msg, 'another password'), false);
  });

  it('a check with a real tie-breaker is left alone', () => {
    const tie = Buffer.from('0000000500000007', 'hex');
    const msg = relayedCheck(PASSWORD, tie);
    const before = Buffer.from(msg);
    assert.equal(repairRelayedCheck(msg, PASSWORD, 2130706431), false);
    assert.deepEqual(msg, before);
  });

  it("a success response's mapped address becomes the browser's, re-signed", () => {
    const msg = mappedResponse('127.0.0.1', 40001);
    assert.equal(rewriteMappedAddress(msg, PASSWORD, '203.0.113.9', 61000), true);
    assert.equal(xorMapped(msg), '203.0.113.9:61000');
    assert.ok(verifyIntegrity(msg, PASSWORD) && fingerprintValid(msg));
  });

  it('RTP, DTLS and truncated messages are not STUN', () => {
    assert.equal(stunType(Buffer.from([0x80, 0x60, 0, 1, ...Buffer.alloc(20)])), undefined);
    assert.equal(stunType(Buffer.from([22, 254, 253, ...Buffer.alloc(30)])), undefined);
    assert.equal(stunType(relayedCheck().subarray(0, 40)), undefined);
  });
});

describe('the SFU candidates', () => {
  const engine = [
    'v=0', 'o=rtc 1 0 IN IP4 10.0.0.5', 's=-', 't=0 0', 'a=group:BUNDLE 0 1',
    'm=video 40002 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 10.0.0.5', 'a=mid:0', 'a=ice-ufrag:abcd', 'a=ice-pwd:secretpassword0123456789',
    'a=candidate:1 1 UDP 2122317823 10.0.0.5 40002 typ host', 'a=end-of-candidates',
    'm=audio 40002 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 10.0.0.5', 'a=mid:1', '',
  ].join('\r\n');

  it('reads the password and the engine host candidate from a local description', () => {
    assert.deepEqual(localIce(engine), { password: 'secretpassword0123456789', host: { address: '10.0.0.5', port: 40002 } });
  });

  it('the announced address replaces the bind address, and the entrance is one more candidate of the section that has candidates', () => {
    const out = announceCandidates(engine, { bindAddress: '10.0.0.5', announcedAddress: '203.0.113.7', entrance: { address: '203.0.113.7', port: 40003 } });
    assert.doesNotMatch(out, /10\.0\.0\.5 40002/);
    assert.match(out, /a=candidate:1 1 UDP 2122317823 203\.0\.113\.7 40002 typ host\r\n/);
    const entrance = out.split('\r\n').filter((l) => l.includes('203.0.113.7 40003'));
    assert.equal(entrance.length, 1);
    assert.ok(out.indexOf('40003 typ host') < out.indexOf('a=end-of-candidates'), 'before end-of-candidates');
    assert.ok(out.endsWith('\r\n'), 'still ends with a line break');
    assert.match(out, /^c=IN IP4 203\.0\.113\.7$/m);
  });

  it('without an announced address the candidates stay as the engine wrote them', () => {
    assert.equal(announceCandidates(engine, { bindAddress: '10.0.0.5' }), engine);
  });
});

describe('the relay entrance', () => {
  async function bound(): Promise<Socket> {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    return s;
  }
  const next = (s: Socket) => new Promise<[Buffer, { address: string; port: number }]>((r) => s.once('message', (m, from) => r([m, from])));

  it('passes a signed zero-tie-breaker check on repaired, brings the answer back with the browser address; an unsigned packet opens no path', async () => {
    const agent = await bound(); // plays libjuice
    const browser = await bound(); // plays the TURN server's relayed address
    const entrance = await RelayEntrance.open({ bindAddress: '127.0.0.1', portRange: { begin: 42000, end: 42999 } });
    try {
      assert.ok(entrance.port >= 42000 && entrance.port <= 42999, `port ${entrance.port} in range`);
      entrance.setLocal({ address: '127.0.0.1', port: agent.address().port }, PASSWORD);

      browser.send(Buffer.from([0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]), entrance.port, '127.0.0.1');
      browser.send(relayedCheck('not the password'), entrance.port, '127.0.0.1');
      // A check with a real tie-breaker (direct UDP, TURN over UDP) belongs at libjuice's own port.
      browser.send(relayedCheck(PASSWORD, Buffer.from('0000000500000007', 'hex')), entrance.port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(entrance.peers, 0, 'nothing unsigned, and no check that needs no repair, opens a path');

      const arriving = next(agent);
      browser.send(relayedCheck(), entrance.port, '127.0.0.1');
      const [check, inner] = await arriving;
      assert.equal(attributeValue(check, 0x8029)!.readBigUInt64BE(), 1n);
      assert.ok(verifyIntegrity(check, PASSWORD));
      assert.equal(entrance.peers, 1);

      const answered = next(browser);
      agent.send(mappedResponse(inner.address, inner.port), inner.port, inner.address);
      const [response, from] = await answered;
      assert.equal(from.port, entrance.port, 'the answer comes from the entrance');
      assert.equal(xorMapped(response), `127.0.0.1:${browser.address().port}`);
      assert.ok(verifyIntegrity(response, PASSWORD) && fingerprintValid(response));

      // Media both ways, untouched.
      const rtp = Buffer.from([0x80, 0x60, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9]);
      const media = next(agent);
      browser.send(rtp, entrance.port, '127.0.0.1');
      assert.deepEqual((await media)[0], rtp);
      const back = next(browser);
      agent.send(rtp, inner.port, inner.address);
      assert.deepEqual((await back)[0], rtp);
    } finally {
      entrance.close();
      agent.close();
      browser.close();
    }
  });
});
