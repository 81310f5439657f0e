/** Small UDP probes run inside lab namespaces: round-trip time, throughput and loss across emulated links. */
import type { NetLab } from '../support/netlab.js';

/** UDP echo on port 9000 of `host`: every datagram sent back. */
const ECHO = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(9000, process.argv[1], () => console.log('up'));
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;

/** Sends `count` datagrams of `size` bytes at `kbps` to argv[1]:9000, reports RTTs and how many came back. */
const PINGER = `
const [, to, count, size, kbps] = process.argv.map(String);
const s = require('node:dgram').createSocket('udp4');
const sent = new Map(); const rtts = []; let first = 0, last = 0, bytes = 0;
s.on('message', (m) => { const t = sent.get(m.readUInt32BE(0)); if (t !== undefined) { const now = performance.now(); rtts.push(now - t); if (!first) first = now; last = now; bytes += m.length; } });
const n = Number(count), gapMs = (Number(size) * 8) / Number(kbps);
let i = 0;
const start = performance.now();
(function next() {
  while (i < n && performance.now() - start >= i * gapMs) { const b = Buffer.alloc(Number(size)); b.writeUInt32BE(i, 0); sent.set(i, performance.now()); s.send(b, 9000, to); i++; }
  if (i < n) setTimeout(next, Math.max(0, Math.min(5, gapMs))); else setTimeout(() => { console.log(JSON.stringify({ rtts, received: rtts.length, sent: n, kbps: last > first ? (bytes * 8) / (last - first) : 0 })); process.exit(0); }, 1500);
})();`;

export interface ProbeResult {
  rtts: number[];
  received: number;
  sent: number;
  /** Rate the echoes came back at, kbit/s. */
  kbps: number;
}

/** Echo on `to`, pings from `from`: `count` datagrams of `size` bytes sent at `kbps`. */
export async function probe(lab: NetLab, from: string, to: string, count: number, size: number, kbps: number): Promise<ProbeResult> {
  const echo = lab.spawn(to, process.execPath, ['-e', ECHO, lab.address(to)]);
  try {
    await new Promise<void>((resolve, reject) => {
      echo.stdout!.once('data', () => resolve());
      echo.once('exit', (c) => reject(new Error(`echo exited ${c}`)));
    });
    const pinger = lab.spawn(from, process.execPath, ['-e', PINGER, lab.address(to), String(count), String(size), String(kbps)]);
    let out = '';
    pinger.stdout!.on('data', (d) => (out += d));
    await new Promise((resolve) => pinger.once('exit', resolve));
    return JSON.parse(out) as ProbeResult;
  } finally {
    echo.stdin!.end();
    echo.kill();
  }
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}
