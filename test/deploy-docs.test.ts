/**
 * docs/DEPLOY.md, "One server behind NAT": the recipe works as written, as far as one machine
 * can check it. Its linkcall environment passes linkcall's own configuration check; its coturn
 * file starts a real coturn (addresses swapped for loopback, ports for free ones, a certificate
 * made here) that grants a relay with linkcall's credentials, refuses expired ones and speaks
 * TLS; its firewall table opens what those two files use. nginx is not installed here, so its
 * stream block is not run.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { describe, it } from 'node:test';
import { loadConfig } from '../src/server/config.js';
import { turnCredentials } from '../src/server/http/ice.js';
import { daemonDir, freePort, spawnDaemon, stopChild, waitUntil } from './support/services.js';
import { stunBinding, turnAllocate } from './support/turn-client.js';

const doc = readFileSync(new URL('../docs/DEPLOY.md', import.meta.url), 'utf8');
const section = (() => {
  const start = doc.indexOf('## One server behind NAT');
  assert.ok(start >= 0, 'DEPLOY.md has the section');
  const end = doc.indexOf('\n## ', start + 3);
  return doc.slice(start, end < 0 ? undefined : end);
})();

/** The code block whose first line starts with `firstLine`. */
function block(firstLine: string): string {
  for (const m of section.matchAll(/```\w*\n([\s\S]*?)```/g)) if (m[1]!.startsWith(firstLine)) return m[1]!;
  throw new Error(`no block starting with ${firstLine} in DEPLOY.md`);
}

/** KEY=VALUE lines, comments (whole-line and trailing "  # …") dropped. */
function keyValues(text: string): [string, string][] {
  return text
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const at = l.indexOf('=');
      return at < 0 ? [l, ''] : [l.slice(0, at), l.slice(at + 1)];
    });
}

/** The firewall table's rows: port (or range), protocol. */
const firewall = [...section.matchAll(/^\| ([\d-]+) \| (UDP|TCP) \|/gm)].map((m) => ({ ports: m[1]!, protocol: m[2]! }));
const opens = (ports: string, protocol: string) => firewall.some((r) => r.ports === ports && r.protocol === protocol);

const env = Object.fromEntries(keyValues(block('# /etc/linkcall/env')));
const turnConf = keyValues(block('# /etc/turnserver.conf'));
const turnValue = (key: string) => turnConf.find(([k]) => k === key)?.[1];

describe('DEPLOY.md: one server behind NAT', () => {
  it("the linkcall environment passes linkcall's configuration check", () => {
    const secret = randomBytes(32).toString('base64');
    const filled = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.startsWith('<') ? secret : v]));
    const config = loadConfig({ ...filled, DATA_DIR: '/nonexistent-linkcall-doc-check' });
    assert.deepEqual(config.mediaPorts, { begin: 40000, end: 40999 });
    assert.equal(config.mediaAnnouncedAddress, '203.0.113.7');
    assert.ok(config.turn, 'TURN configured');
    assert.ok(config.turn.urls.some((u) => /^turns:[^:]+:443\?transport=tcp$/.test(u)), 'TURN over TLS on 443');
    assert.ok(config.turn.urls.some((u) => /:3478\?transport=tcp$/.test(u)), 'TURN over TCP');
    assert.ok(config.turn.urls.some((u) => /:3478\?transport=udp$/.test(u)), 'TURN over UDP');
  });

  it('the firewall table opens what the two files use', () => {
    assert.ok(opens(env.MEDIA_PORTS!, 'UDP'), `MEDIA_PORTS ${env.MEDIA_PORTS} open for UDP`);
    const turnPort = turnValue('listening-port')!;
    assert.ok(opens(turnPort, 'UDP') && opens(turnPort, 'TCP'), `TURN ${turnPort} open for UDP and TCP`);
    assert.ok(opens(`${turnValue('min-port')}-${turnValue('max-port')}`, 'UDP'), "coturn's relay ports open");
    assert.ok(opens('443', 'TCP'), 'HTTPS and TURN over TLS');
    assert.equal(turnValue('use-auth-secret'), '', 'coturn takes linkcall credentials');
    assert.equal(turnValue('allow-loopback-peers'), undefined, 'never in production');
  });

  it("the coturn file starts a coturn that grants a relay with linkcall's credentials and speaks TLS", { timeout: 60_000 }, async () => {
    const dir = daemonDir('linkcall-doc-turn-');
    const secret = randomBytes(24).toString('base64url');
    const [port, tlsPort] = [await freePort(true), await freePort()];
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=turn.example.org', '-keyout', key, '-out', cert], { stdio: 'pipe' });
    execFileSync('chmod', ['644', cert, key]);
    // The documented file, with this machine's loopback, free ports and a certificate made here.
    const swapped: Record<string, string | undefined> = {
      'listening-ip': '127.0.0.1',
      'relay-ip': '127.0.0.1',
      'external-ip': undefined,
      'listening-port': String(port),
      'tls-listening-port': String(tlsPort),
      'static-auth-secret': secret,
      cert,
      pkey: key,
    };
    const lines = turnConf
      .map(([k, v]) => (k in swapped ? (swapped[k] === undefined ? undefined : `${k}=${swapped[k]}`) : v === '' ? k : `${k}=${v}`))
      .filter((l): l is string => l !== undefined);
    lines.push(`userdb=${join(dir, 'turndb')}`, `pidfile=${join(dir, 'turnserver.pid')}`, 'log-file=stdout', 'simple-log');
    const file = join(dir, 'turnserver.conf');
    writeFileSync(file, lines.join('\n') + '\n', { mode: 0o644 });
    const daemon = spawnDaemon('turnserver', ['-c', file]);
    try {
      await waitUntil(async () => {
        if (daemon.child.exitCode !== null) throw new Error('turnserver exited');
        return stunBinding('127.0.0.1', port, 300);
      }, 15_000, daemon.output);
      const fresh = turnCredentials(secret, 600);
      assert.equal((await turnAllocate('127.0.0.1', port, fresh.username, fresh.credential)).ok, true, `a relay for linkcall's credentials: ${daemon.output().slice(-800)}`);
      const expired = turnCredentials(secret, 60, Date.now() - 3600_000);
      assert.deepEqual(await turnAllocate('127.0.0.1', port, expired.username, expired.credential), { ok: false, error: 401 });
      const tlsName = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: tlsPort, servername: 'turn.example.org', rejectUnauthorized: false }, () => {
          resolve(String(socket.getPeerCertificate().subject?.CN ?? ''));
          socket.destroy();
        });
        socket.once('error', reject);
      });
      assert.equal(tlsName, 'turn.example.org', 'TLS with the configured certificate');
    } finally {
      await stopChild(daemon.child);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the SFU's network settings", () => {
  const base = { DATA_DIR: '/nonexistent-linkcall-doc-check' };
  it('MEDIA_PORTS and MEDIA_ANNOUNCED_ADDRESS are read; unset, the SFU takes any port and announces MEDIA_ADDRESS', () => {
    const config = loadConfig({ ...base, MEDIA_ADDRESS: '10.0.0.5', MEDIA_PORTS: '40000-40999', MEDIA_ANNOUNCED_ADDRESS: '203.0.113.7' });
    assert.deepEqual(config.mediaPorts, { begin: 40000, end: 40999 });
    assert.equal(config.mediaAnnouncedAddress, '203.0.113.7');
    const plain = loadConfig(base);
    assert.equal(plain.mediaPorts, undefined);
    assert.equal(plain.mediaAnnouncedAddress, undefined);
  });

  it('a malformed range or address is refused with a sentence that says what is expected', () => {
    for (const [value, said] of [
      ['40000', /MEDIA_PORTS must be a range such as 40000-40999/],
      ['41000-40000', /lowest port first/],
      ['80-90', /within 1024-65535/],
      ['40000-70000', /within 1024-65535/],
    ] as const) {
      assert.throws(() => loadConfig({ ...base, MEDIA_PORTS: value }), said, value);
    }
    assert.throws(() => loadConfig({ ...base, MEDIA_ANNOUNCED_ADDRESS: 'call.example.org' }), /MEDIA_ANNOUNCED_ADDRESS must be an IPv4 address/);
  });
});
