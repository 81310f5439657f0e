/**
 * The network lab: the server and each browser in a network namespace of its own, joined by
 * emulated links (DESIGN.md, "Real networks — the lab"). This kernel has no netem, so links are
 * emulated in userspace.
 *
 * Shape: a star. Each host (namespace `lclab<pid>-<name>`) has one TUN device, address
 * 10.99.0.<n>/24 and its default route on it. One link-emulator process (netlab-link.c,
 * compiled here with `cc` into a temporary directory) created every TUN in the root namespace
 * before they were moved into the hosts' namespaces, and holds all their file descriptors: it is
 * the router in the middle. A packet from host a to host b crosses a's uplink, then b's
 * downlink; each direction has its own delay, jitter, random or burst loss, rate cap with a
 * drop-tail queue, and UDP blocking, changeable mid-run. So "the guest's downlink" is what
 * reaches the guest from anyone, server or other browser, as on a real access link.
 *
 * The emulator is a child process so the test's event loop adds no jitter; it exits when its
 * stdin closes (the test process died). Namespaces carry the creating process's pid: a lab
 * finds namespaces of dead pids (a crashed run), ends the processes left in them and deletes
 * them. `NetLab.close()` and process exit delete this lab's own.
 *
 * Where namespaces cannot be made (not root, no CAP_NET_ADMIN, no /dev/net/tun, no `cc`),
 * `labUnavailable()` says why, for callers to skip with that reason.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './browser.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '../..');
const IP = existsSync('/usr/sbin/ip') ? '/usr/sbin/ip' : 'ip';
const PREFIX = 'lclab';

/**
 * LAB_PRIORITY. Every namespace stands for a machine of its own, but here they share two cores.
 * The server stamps each packet's arrival for the senders' bandwidth estimators (transport-cc) on
 * its event loop, so when the browsers kept it waiting, the stamps came late and the senders read
 * a queue that was not there: in the call of three on clean 20 ms links, the people's send
 * estimates fell to 120-550 kbit/s, round trips read 50-1200 ms, and their largest layers
 * stopped. With the server niced ahead of the browsers and the link emulator at real-time
 * priority, the same call's estimates were 1-2 Mbit/s (side by side, 2026-12-07). The browsers
 * still share what is left: their frame rates stay CPU-bound, and the tests' bounds say so.
 */
const SERVER_NICE = -10;

/** One direction of a host's access link. Unset fields keep their value. */
export interface Impairment {
  delayMs?: number;
  /** Uniform jitter, ± this many ms (packet order is kept). */
  jitterMs?: number;
  lossPercent?: number;
  /** Mean length of a loss burst in packets (Gilbert-Elliott); 1 (default) = independent losses. */
  burstLength?: number;
  /** Rate cap in kbit/s; 0 = unlimited. */
  rateKbps?: number;
  /** The rate limiter's queue, as milliseconds of backlog (drop-tail beyond it). */
  queueMs?: number;
  blockUdp?: boolean;
}

/** Everything off: no delay, no loss, no cap. */
export const CLEAN: Required<Impairment> = { delayMs: 0, jitterMs: 0, lossPercent: 0, burstLength: 1, rateKbps: 0, queueMs: 0, blockUdp: false };

export interface DirectionStats {
  in: number;
  out: number;
  bytesOut: number;
  lost: number;
  queueDrops: number;
  udpDrops: number;
}

let cachedReason: string | undefined | null = null;

/** Why this machine cannot run the lab, or undefined when it can. */
export function labUnavailable(): string | undefined {
  if (cachedReason !== null) return cachedReason;
  cachedReason = (() => {
    if (process.platform !== 'linux') return 'the network lab needs Linux network namespaces';
    if (process.getuid?.() !== 0) return 'the network lab needs root (network namespaces and TUN devices)';
    try {
      accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
    } catch {
      return 'the network lab needs /dev/net/tun';
    }
    try {
      execFileSync('cc', ['--version'], { stdio: 'ignore' });
    } catch {
      return 'the network lab needs a C compiler (cc) for its link emulator';
    }
    const probe = `${PREFIX}${process.pid}-probe`;
    try {
      execFileSync(IP, ['netns', 'add', probe], { stdio: 'pipe' });
      execFileSync(IP, ['netns', 'delete', probe], { stdio: 'pipe' });
    } catch (err) {
      return `network namespaces cannot be made here (no CAP_NET_ADMIN?): ${String((err as { stderr?: Buffer }).stderr ?? err).trim().split('\n')[0]}`;
    }
    return undefined;
  })();
  return cachedReason;
}

function ip(...args: string[]): void {
  execFileSync(IP, args, { stdio: 'pipe' });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Namespaces left by a lab whose process is gone: their processes ended, the namespaces deleted. */
export function removeStaleNamespaces(): void {
  const listed = execFileSync(IP, ['netns', 'list'], { encoding: 'utf8' });
  for (const line of listed.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
    if (!m || alive(Number(m[1]))) continue;
    deleteNamespace(name);
  }
}

function deleteNamespace(name: string): void {
  try {
    const pids = execFileSync(IP, ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    ip('netns', 'delete', name);
  } catch {}
}

/** The emulator binary, compiled once per source version into the temporary directory. */
function emulatorBinary(): string {
  const source = join(HERE, 'netlab-link.c');
  const hash = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), 'linkcall-netlab');
  const binary = join(dir, `netlab-link-${hash}`);
  if (!existsSync(binary)) {
    mkdirSync(dir, { recursive: true });
    const building = `${binary}.${process.pid}`;
    execFileSync('cc', ['-O2', '-Wall', '-o', building, source], { stdio: 'pipe' });
    execFileSync('mv', [building, binary]);
  }
  return binary;
}

const labs = new Set<NetLab>();
process.on('exit', () => {
  for (const lab of labs) lab.closeNow();
});

export interface LabServer {
  /** http://<server address>:<port> */
  url: string;
  /** The server process (in its namespace). */
  pid: number;
  close(): Promise<void>;
}

export class NetLab {
  readonly hosts: readonly string[];
  readonly #emulator: ChildProcess;
  readonly #replies: Interface;
  #pending: ((line: string) => void)[] = [];
  #children = new Set<ChildProcess>();
  #tmp: string;
  #closed = false;

  private constructor(hosts: string[], emulator: ChildProcess, replies: Interface, tmp: string) {
    this.hosts = hosts;
    this.#emulator = emulator;
    this.#replies = replies;
    this.#tmp = tmp;
    replies.on('line', (line) => this.#pending.shift()?.(line));
  }

  /** Namespaces for these hosts (e.g. ['server', 'host', 'guest']), joined through clean links. */
  static async create(hosts: string[]): Promise<NetLab> {
    const reason = labUnavailable();
    if (reason) throw new Error(reason);
    if (hosts.length === 0 || hosts.length > 16 || new Set(hosts).size !== hosts.length || hosts.some((h) => !/^[a-z0-9]{1,12}$/.test(h))) {
      throw new TypeError(`hosts must be 1–16 distinct short lowercase names, got ${JSON.stringify(hosts)}`);
    }
    removeStaleNamespaces();
    const tmp = mkdtempSync(join(tmpdir(), 'linkcall-netlab-'));
    const tuns = hosts.map((_, i) => `lc${process.pid}h${i}`);
    const emulator = spawn(emulatorBinary(), tuns.map((t, i) => `${t}=${NetLab.addressOf(i)}`), { stdio: ['pipe', 'pipe', 'pipe'] });
    // The links are hardware of their own on a real network: at normal priority, with three
    // browsers on two cores the emulator forwarded late and added jitter that no link had (LAB_PRIORITY).
    if (emulator.pid) execFileSync('chrt', ['--rr', '--all-tasks', '--pid', '1', String(emulator.pid)]);
    let stderr = '';
    emulator.stderr!.on('data', (d) => (stderr += d));
    const replies = createInterface({ input: emulator.stdout! });
    const ready = await new Promise<boolean>((resolve) => {
      replies.once('line', (l) => resolve(l === 'ready'));
      emulator.once('exit', () => resolve(false));
    });
    if (!ready) throw new Error(`the link emulator did not start: ${stderr.trim()}`);
    const lab = new NetLab(hosts, emulator, replies, tmp);
    labs.add(lab);
    try {
      hosts.forEach((host, i) => {
        const ns = lab.namespace(host);
        ip('netns', 'add', ns);
        ip('link', 'set', tuns[i]!, 'netns', ns);
        ip('-n', ns, 'link', 'set', 'lo', 'up');
        ip('-n', ns, 'addr', 'add', `${NetLab.addressOf(i)}/24`, 'dev', tuns[i]!);
        ip('-n', ns, 'link', 'set', tuns[i]!, 'up');
        // WebRTC gathers candidates on the interface of the default route.
        ip('-n', ns, 'route', 'add', 'default', 'dev', tuns[i]!);
      });
    } catch (err) {
      lab.closeNow();
      throw err;
    }
    return lab;
  }

  private static addressOf(index: number): string {
    return `10.99.0.${index + 1}`;
  }

  namespace(host: string): string {
    this.#index(host);
    return `${PREFIX}${process.pid}-${host}`;
  }

  address(host: string): string {
    return NetLab.addressOf(this.#index(host));
  }

  #index(host: string): number {
    const i = this.hosts.indexOf(host);
    if (i < 0) throw new TypeError(`no host ${JSON.stringify(host)} in this lab (${this.hosts.join(', ')})`);
    return i;
  }

  #ask(line: string): Promise<string> {
    if (this.#closed) return Promise.reject(new Error('the lab is closed'));
    return new Promise((resolve) => {
      this.#pending.push(resolve);
      this.#emulator.stdin!.write(`${line}\n`);
    });
  }

  /** Impair one host's uplink (host → others), downlink (others → host), or both. */
  async impair(host: string, direction: 'up' | 'down' | 'both', impairment: Impairment): Promise<void> {
    const keys: [keyof Impairment, string][] = [
      ['delayMs', 'delay'], ['jitterMs', 'jitter'], ['lossPercent', 'loss'], ['burstLength', 'burst'],
      ['rateKbps', 'rate'], ['queueMs', 'queue'], ['blockUdp', 'blockudp'],
    ];
    const params = keys
      .filter(([k]) => impairment[k] !== undefined)
      .map(([k, name]) => `${name}=${typeof impairment[k] === 'boolean' ? Number(impairment[k]) : impairment[k]}`);
    const reply = await this.#ask(`set ${this.#index(host)} ${direction} ${params.join(' ')}`);
    if (reply !== 'ok') throw new Error(`the link emulator refused ${params.join(' ')}: ${reply}`);
  }

  /**
   * Puts `host` behind a 1:1 NAT with `publicAddress` (in 10.99.0.0/16, outside the lab's /24):
   * it sends with that source, others reach it only there, never at its own address.
   */
  async nat(host: string, publicAddress: string): Promise<void> {
    const reply = await this.#ask(`nat ${this.#index(host)} ${publicAddress}`);
    if (reply !== 'ok') throw new Error(`the link emulator refused NAT ${publicAddress}: ${reply}`);
  }

  /** Every host's links back to clean. */
  async clear(): Promise<void> {
    for (const host of this.hosts) await this.impair(host, 'both', CLEAN);
  }

  /** Packet counters per host and direction since the lab started. */
  async stats(): Promise<Record<string, { up: DirectionStats; down: DirectionStats }>> {
    const reply = await this.#ask('stats');
    const parsed = JSON.parse(reply.replace(/^stats /, '')) as { hosts: { up: DirectionStats; down: DirectionStats }[] };
    return Object.fromEntries(this.hosts.map((h, i) => [h, parsed.hosts[i]!]));
  }

  /** Start a process inside a host's namespace (ended when the lab closes). */
  spawn(host: string, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
    const child = spawn(IP, ['netns', 'exec', this.namespace(host), command, ...args], {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /**
   * A linkcall server in `host`'s namespace, listening and sending media on its lab address.
   * It runs ahead of the browsers (LAB_PRIORITY), as on a machine of its own.
   */
  async startServer(host: string, env: Record<string, string> = {}): Promise<LabServer> {
    const child = this.spawn(host, 'nice', ['-n', String(SERVER_NICE), process.execPath, '--import', 'tsx', join(HERE, 'netlab-server.ts')], {
      env: { ...process.env, ...env, HOST: this.address(host), MEDIA_ADDRESS: this.address(host) },
    });
    let output = '';
    child.stderr!.on('data', (d) => (output += d));
    const url = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        const m = /^listening (\S+)$/.exec(line);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`the lab's server exited (${code}): ${output.trim().slice(-2000)}`)));
    });
    return {
      url,
      pid: child.pid!,
      close: () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.stdin!.end();
          setTimeout(() => child.kill('SIGKILL'), 5000).unref();
        }),
    };
  }

  /** Headless Chromium in `host`'s namespace; `secureOrigin` (http://…) counts as a secure context. */
  async launchChromium(host: string, secureOrigin: string, extraArgs: string[] = []): Promise<Browser> {
    const wrapper = join(this.#tmp, `chromium-${host}`);
    writeFileSync(wrapper, `#!/bin/sh\nexec ${IP} netns exec ${this.namespace(host)} ${CHROMIUM_PATH} "$@"\n`);
    chmodSync(wrapper, 0o755);
    return chromium.launch({
      executablePath: wrapper,
      args: [
        ...CHROMIUM_ARGS,
        `--unsafely-treat-insecure-origin-as-secure=${secureOrigin}`,
        // Host candidates with real addresses, as with camera permission on a real page.
        '--disable-features=WebRtcHideLocalIpsWithMdns',
        ...extraArgs,
      ],
    });
  }

  /** Ends the emulator and every process started in the lab, deletes the namespaces. */
  async close(): Promise<void> {
    this.closeNow();
  }

  /** Synchronous, for process exit. Calling it again does nothing. */
  closeNow(): void {
    if (this.#closed) return;
    this.#closed = true;
    labs.delete(this);
    for (const child of this.#children) child.kill('SIGKILL');
    this.#replies.close();
    this.#emulator.kill('SIGKILL');
    for (const host of this.hosts) deleteNamespace(this.namespace(host));
    rmSync(this.#tmp, { recursive: true, force: true });
  }
}
