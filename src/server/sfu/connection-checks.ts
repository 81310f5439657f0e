/**
 * The SFU's side of "Check my connection": a few short-lived ConnectionProbes on the SFU's own
 * network settings (bind address, port range, announced address, relay entrance), so a path that
 * works for the check works for a call. The HTTP route hands offers here and never touches the
 * media engine itself.
 */
import { LinkcallError } from '../../protocol/errors.js';
import type { MediaNetworkOptions } from '../config.js';
import { ConnectionProbe } from '../media/connection-probe.js';

const PROBE_LIFETIME_MS = 20_000;
const MAX_PROBES = 32;

export class ConnectionChecks {
  readonly #probes = new Set<ConnectionProbe>();
  readonly #network: ConstructorParameters<typeof ConnectionProbe>[0];

  constructor(options: MediaNetworkOptions) {
    this.#network = {
      bindAddress: options.bindAddress,
      announcedAddress: options.announcedAddress,
      portRange: options.portRangeBegin !== undefined && options.portRangeEnd !== undefined ? { begin: options.portRangeBegin, end: options.portRangeEnd } : undefined,
      relayEntrance: options.relayEntrance,
    };
  }

  /** The answer to one path's offer; `rate_limited` while too many probes are open, `bad_request` for an offer the engine refuses. */
  async answer(offerSdp: string): Promise<string> {
    if (this.#probes.size >= MAX_PROBES) throw new LinkcallError('rate_limited');
    const probe = new ConnectionProbe(this.#network, PROBE_LIFETIME_MS);
    this.#probes.add(probe);
    probe.onClose = () => this.#probes.delete(probe);
    try {
      return await probe.answer(offerSdp);
    } catch (err) {
      probe.close();
      if (err instanceof TypeError) throw new LinkcallError('bad_request');
      throw err;
    }
  }

  close(): void {
    for (const probe of [...this.#probes]) probe.close();
  }
}
