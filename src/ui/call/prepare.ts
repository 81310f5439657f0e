/**
 * Everything Join needs, done while the person is still looking at the
 * preview: the signaling socket is open and the sealed name card is ready, so
 * pressing Join only sends one message.
 */
import { CallSession } from '../../client/call.js';
import { SignalingClient } from '../../client/signaling.js';
import type { LinkKeys } from '../../e2ee/keys.js';

export interface PreparedCall {
  signaling: SignalingClient;
  call: CallSession;
}

export async function prepareCall(linkId: string, linkKeys: LinkKeys, name: string): Promise<PreparedCall> {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const signaling = new SignalingClient(`${scheme}://${location.host}/ws`);
  const call = new CallSession(signaling, linkId, linkKeys);
  await Promise.all([signaling.connect(), call.prepare(name)]);
  return { signaling, call };
}
