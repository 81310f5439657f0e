/** Lets a test see a page's RTCPeerConnections (the app keeps them private): how ICE connected them. */
import type { BrowserContext, Page } from 'playwright-core';

/** Call before the page loads: every RTCPeerConnection the page makes is kept in `window.__pcs`. */
export async function recordPeerConnections(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    // Another init script (the lab's clock camera) may keep them already: wrapping twice counted each connection twice.
    if ((window as unknown as { __pcs?: RTCPeerConnection[] }).__pcs) return;
    const Native = window.RTCPeerConnection;
    const pcs: RTCPeerConnection[] = [];
    (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs = pcs;
    window.RTCPeerConnection = class extends Native {
      constructor(config?: RTCConfiguration) {
        super(config);
        pcs.push(this);
      }
    } as typeof RTCPeerConnection;
  });
}

export interface PathInfo {
  /** Configuration the page gave its connections. */
  policy: string | undefined;
  iceServers: number;
  /**
   * Per connected PeerConnection: the candidate types of the selected pair, local and remote, and
   * for a relay candidate how the page reaches the TURN server ('udp', 'tcp' or 'tls').
   */
  selected: { local: string; remote: string; relayProtocol?: string; remoteAddress?: string; remotePort?: number }[];
}

/** The candidate types of each connected PeerConnection's selected pair. */
export async function mediaPaths(page: Page): Promise<PathInfo> {
  return page.evaluate(async () => {
    const pcs = (window as unknown as { __pcs: RTCPeerConnection[] }).__pcs ?? [];
    const selected: { local: string; remote: string; relayProtocol?: string; remoteAddress?: string; remotePort?: number }[] = [];
    let policy: string | undefined;
    let iceServers = 0;
    for (const pc of pcs) {
      if (pc.connectionState !== 'connected') continue;
      const config = pc.getConfiguration();
      policy = config.iceTransportPolicy;
      iceServers = config.iceServers?.length ?? 0;
      const stats = await pc.getStats();
      const byId = new Map<string, any>();
      stats.forEach((s: any) => byId.set(s.id, s));
      for (const s of byId.values()) {
        if (s.type !== 'transport' || !s.selectedCandidatePairId) continue;
        const pair = byId.get(s.selectedCandidatePairId);
        const local = byId.get(pair.localCandidateId);
        const remote = byId.get(pair.remoteCandidateId);
        selected.push({
          local: local?.candidateType,
          remote: remote?.candidateType,
          ...(local?.relayProtocol ? { relayProtocol: local.relayProtocol } : {}),
          remoteAddress: remote?.address,
          remotePort: remote?.port,
        });
      }
    }
    return { policy, iceServers, selected };
  });
}
