/**
 * The SFU's ICE candidates as browsers see them: the engine's host candidates with the public
 * address put in when the server sits behind NAT (MEDIA_ANNOUNCED_ADDRESS), and the relay
 * entrance's candidate added when browsers may come through TURN (relay-entrance.ts).
 */
import { ENTRANCE_CANDIDATE_PRIORITY, RelayEntrance } from './relay-entrance.js';

/** How the SFU's media sockets sit on the network (docs/DEPLOY.md, "Network"). */
export interface MediaNetwork {
  /** Address libjuice and the relay entrance bind (MEDIA_ADDRESS). */
  bindAddress?: string;
  /** Address browsers are told to send to, when the bind address is not reachable from outside (NAT). */
  announcedAddress?: string;
  /** UDP ports every media socket uses (MEDIA_PORTS). */
  portRange?: { begin: number; end: number };
  /** Whether to open a relay entrance per connection (when TURN is configured). */
  relayEntrance?: boolean;
}

const CANDIDATE = /^a=candidate:(\S+) (\d+) (udp|UDP) (\d+) (\S+) (\d+) typ (\S+)(.*)$/;

/** The connection's ICE password and libjuice's first IPv4 host candidate, from its local description. */
export function localIce(sdp: string): { password: string; host: { address: string; port: number } } | undefined {
  const password = /^a=ice-pwd:(\S+)\r?$/m.exec(sdp)?.[1];
  let host: { address: string; port: number } | undefined;
  for (const line of sdp.split(/\r?\n/)) {
    const m = CANDIDATE.exec(line);
    if (m && m[7] === 'host' && /^\d+\.\d+\.\d+\.\d+$/.test(m[5]!)) {
      host = { address: m[5]!, port: Number(m[6]) };
      break;
    }
  }
  return password && host ? { password, host } : undefined;
}

/**
 * `sdp` with host candidates on `bindAddress` (or, without one, every IPv4 host candidate) naming
 * `announcedAddress` instead, and an entrance candidate after each section's candidates.
 */
export function announceCandidates(sdp: string, opts: { bindAddress?: string; announcedAddress?: string; entrance?: { address: string; port: number } }): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(/\r?\n/);
  const out: string[] = [];
  const entranceLine = opts.entrance && `a=candidate:lcrelay 1 UDP ${ENTRANCE_CANDIDATE_PRIORITY} ${opts.entrance.address} ${opts.entrance.port} typ host`;
  let sectionHasCandidates = false;
  let added = false;
  const flushEntrance = () => {
    if (entranceLine && sectionHasCandidates && !added) out.push(entranceLine);
    sectionHasCandidates = false;
    added = false;
  };
  for (const line of lines) {
    if (line.startsWith('m=')) flushEntrance();
    if (line === 'a=end-of-candidates' && sectionHasCandidates && entranceLine && !added) {
      out.push(entranceLine);
      added = true;
    }
    const m = CANDIDATE.exec(line);
    if (m) {
      sectionHasCandidates = true;
      const rewrite = opts.announcedAddress && m[7] === 'host' && (opts.bindAddress ? m[5] === opts.bindAddress : /^\d+\.\d+\.\d+\.\d+$/.test(m[5]!));
      out.push(rewrite ? `a=candidate:${m[1]} ${m[2]} ${m[3]} ${m[4]} ${opts.announcedAddress} ${m[6]} typ ${m[7]}${m[8]}` : line);
      continue;
    }
    if (opts.announcedAddress && opts.bindAddress && line === `c=IN IP4 ${opts.bindAddress}`) {
      out.push(`c=IN IP4 ${opts.announcedAddress}`);
      continue;
    }
    out.push(line);
  }
  // The last section: its candidates end where the description does (before the trailing empty line).
  if (entranceLine && sectionHasCandidates && !added) {
    const end = out.length > 0 && out[out.length - 1] === '' ? out.length - 1 : out.length;
    out.splice(end, 0, entranceLine);
  }
  return out.join(eol);
}

/** One media connection's candidates: its relay entrance (opened on first use) and the rewriting. */
export class ConnectionCandidates {
  readonly #network: MediaNetwork;
  #opening?: Promise<void>;
  #entrance?: RelayEntrance;
  #closed = false;

  constructor(network: MediaNetwork) {
    this.#network = network;
  }

  /**
   * The engine's local description as browsers should get it. Synchronous once the entrance is
   * open (a renegotiation's offer goes out in the same turn); the first call waits for its bind.
   */
  describe(engineSdp: string, warn?: (msg: string) => void): string | Promise<string> {
    if (!this.#network.relayEntrance || this.#entrance || this.#closed) return this.#rewrite(engineSdp);
    const bindAddress = this.#network.bindAddress ?? localIce(engineSdp)?.host.address;
    this.#opening ??= RelayEntrance.open({ bindAddress, portRange: this.#network.portRange }).then(
      (entrance) => {
        if (this.#closed) entrance.close();
        else this.#entrance = entrance;
      },
      (err: unknown) => warn?.(`media: ${err instanceof Error ? err.message : 'relay entrance failed'}`),
    );
    return this.#opening.then(() => this.#rewrite(engineSdp));
  }

  #rewrite(engineSdp: string): string {
    const { bindAddress, announcedAddress } = this.#network;
    const local = this.#entrance ? localIce(engineSdp) : undefined;
    if (!this.#entrance || !local) return announcedAddress ? announceCandidates(engineSdp, { bindAddress, announcedAddress }) : engineSdp;
    this.#entrance.setLocal(local.host, local.password);
    return announceCandidates(engineSdp, {
      bindAddress,
      announcedAddress,
      entrance: { address: announcedAddress ?? bindAddress ?? local.host.address, port: this.#entrance.port },
    });
  }

  /** The relay entrance's port, once open (tests check it lies in MEDIA_PORTS). */
  get entrancePort(): number | undefined {
    return this.#entrance?.port;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#entrance?.close();
  }
}
