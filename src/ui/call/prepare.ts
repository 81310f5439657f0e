/**
 * Everything Join needs, done while the person is still looking at the
 * preview: the signaling socket is open and the sealed name card is ready, so
 * pressing Join only sends one message.
 */
import { CallSession, type LinkTrust } from '../../client/call.js';
import { SignalingClient } from '../../client/signaling.js';
import { api } from '../api.js';

export interface PreparedCall {
  signaling: SignalingClient;
  call: CallSession;
  /** ICE servers (TURN, with short-lived credentials) and policy for the media connections. */
  rtc: RTCConfiguration;
}

export async function prepareCall(link: LinkTrust, name: string): Promise<PreparedCall> {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const signaling = new SignalingClient(`${scheme}://${location.host}/ws`);
  const call = new CallSession(signaling, link);
  // Without the server's ICE servers the call still works wherever host candidates reach the SFU.
  const [, , ice] = await Promise.all([signaling.connect(), call.prepare(name), api.ice(link.linkId).catch(() => undefined)]);
  const rtc: RTCConfiguration = ice ? { iceServers: ice.iceServers, iceTransportPolicy: ice.iceTransportPolicy } : {};
  return { signaling, call, rtc };
}
