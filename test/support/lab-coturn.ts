/**
 * A real coturn (Debian's `turnserver`) in a network-lab namespace of its own, as a deployment
 * has it: TURN over UDP and TCP on 3478, TURN over TLS on 443 with a self-signed certificate
 * this helper makes (openssl), `use-auth-secret` with a random shared secret, relaying from its
 * own lab address. Peers on the lab's private addresses are allowed, as they are by default.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NetLab } from './netlab.js';

export interface LabCoturn {
  address: string;
  /** coturn's static-auth-secret: linkcall's TURN_SECRET. */
  secret: string;
  urls: { udp: string; tcp: string; tls: string };
  /** Chromium flag that trusts this server's self-signed certificate (and nothing else). */
  chromiumTrust: string;
  /** Everything coturn logged (for failure messages). */
  output(): string;
  close(): Promise<void>;
}

export const TURN_PORT = 3478;
export const TURNS_PORT = 443;

export async function startLabCoturn(lab: NetLab, host: string): Promise<LabCoturn> {
  const address = lab.address(host);
  const dir = mkdtempSync(join(tmpdir(), 'linkcall-lab-turn-'));
  const secret = randomBytes(24).toString('base64url');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=turn.lab.test', '-addext', `subjectAltName=IP:${address},DNS:turn.lab.test`,
    '-keyout', key, '-out', cert,
  ], { stdio: 'pipe' });
  const config = [
    `listening-ip=${address}`,
    `relay-ip=${address}`,
    `listening-port=${TURN_PORT}`,
    `tls-listening-port=${TURNS_PORT}`,
    `cert=${cert}`,
    `pkey=${key}`,
    'min-port=49152',
    'max-port=49999',
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    'realm=linkcall.test',
    'fingerprint',
    'no-cli',
    'no-dtls',
    'no-tcp-relay',
    'no-software-attribute',
    'no-multicast-peers',
    `userdb=${join(dir, 'turndb')}`,
    `pidfile=${join(dir, 'turnserver.pid')}`,
    'log-file=stdout',
    'simple-log',
  ];
  const configFile = join(dir, 'turnserver.conf');
  writeFileSync(configFile, config.join('\n') + '\n');
  // Root inside the namespace: port 443 needs it, and the namespace is the test's own.
  const child = lab.spawn(host, 'turnserver', ['-c', configFile]);
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const deadline = Date.now() + 15_000;
  while (!(await listening(lab, host, address, [TURN_PORT, TURNS_PORT]))) {
    if (child.exitCode !== null) throw new Error(`turnserver exited: ${output.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`turnserver did not start listening: ${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    address,
    secret,
    urls: {
      udp: `turn:${address}:${TURN_PORT}?transport=udp`,
      tcp: `turn:${address}:${TURN_PORT}?transport=tcp`,
      tls: `turns:${address}:${TURNS_PORT}?transport=tcp`,
    },
    chromiumTrust: `--ignore-certificate-errors-spki-list=${spkiHash(cert)}`,
    output: () => output,
    async close() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether TCP connections to every port of `address` succeed, tried from inside `host`'s namespace. */
async function listening(lab: NetLab, host: string, address: string, ports: number[]): Promise<boolean> {
  const script = `const net = require('node:net'); let left = ${ports.length}; let ok = true;
for (const port of ${JSON.stringify(ports)}) { const s = net.connect(port, ${JSON.stringify(address)});
  const done = (good) => { ok = ok && good; s.destroy(); if (--left === 0) process.exit(ok ? 0 : 1); };
  s.once('connect', () => done(true)); s.once('error', () => done(false)); }`;
  const probe = lab.spawn(host, process.execPath, ['-e', script]);
  return new Promise((resolve) => probe.once('exit', (code) => resolve(code === 0)));
}

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium's SPKI allow-list wants it. */
function spkiHash(certFile: string): string {
  const spki = createPublicKey(readFileSync(certFile)).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}
