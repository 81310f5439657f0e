import type { PeerConnection } from 'node-datachannel';

/**
 * Resolves once ICE gathering is complete, or after timeoutMs (an unreachable STUN/TURN server
 * must not block signaling; the description then carries what was gathered so far).
 * Polls as well as listening, because a state change that happens before the listener is
 * installed is not replayed by the engine.
 */
export function waitForGathering(pc: PeerConnection, timeoutMs = 5000): Promise<void> {
  if (pc.gatheringState() === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const finish = (): void => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve();
    };
    const poll = setInterval(() => {
      try {
        if (pc.gatheringState() === 'complete') finish();
      } catch {
        finish(); // connection closed meanwhile; the caller checks its own state
      }
    }, 20);
    const timer = setTimeout(finish, timeoutMs);
    pc.onGatheringStateChange((state) => {
      if (state === 'complete') finish();
    });
  });
}
