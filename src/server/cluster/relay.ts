/**
 * Node-to-node signaling relay: a client connected to this node whose call lives on
 * another node gets its WebSocket frames passed, unread and unchanged, to and from a
 * WebSocket this node opens to the home node. The home node treats it as the client's
 * own connection (its address and cookie travel in headers signed with CLUSTER_SECRET).
 * Media never passes here: the SDP in those frames points the browser at the home
 * node's SFU.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import WebSocket from 'ws';

export const RELAY_HEADER = 'x-linkcall-relay';
const RELAY_VALIDITY_MS = 30_000;
const HEARTBEAT_MS = 15_000;

/** `<nodeId>.<expiry>.<mac>` over the client's address: proves a cluster node sent the relay. */
export function relayProof(secret: string, nodeId: string, clientAddress: string, now = Date.now()): string {
  const expiry = now + RELAY_VALIDITY_MS;
  return `${nodeId}.${expiry}.${mac(secret, nodeId, expiry, clientAddress)}`;
}

export function verifyRelayProof(secret: string, proof: string, clientAddress: string, now = Date.now()): boolean {
  const [nodeId, expiryText, given] = proof.split('.');
  const expiry = Number(expiryText);
  if (!nodeId || !given || !Number.isFinite(expiry) || expiry < now) return false;
  const expected = Buffer.from(mac(secret, nodeId, expiry, clientAddress));
  const actual = Buffer.from(given);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function mac(secret: string, nodeId: string, expiry: number, clientAddress: string): string {
  return createHmac('sha256', secret).update(`relay\n${nodeId}\n${expiry}\n${clientAddress}`).digest('base64url');
}

export interface RelayTarget {
  /** The home node's base URL (http…). */
  url: string;
  headers: Record<string, string>;
}

/** Close codes a WebSocket peer may send on purpose; others (1005, 1006, 1015) mean "gone". */
const sendable = (code: number) => code === 1000 || code === 1001 || (code >= 3000 && code <= 4999);

/**
 * Connect to the home node and pass frames both ways. `early` frames go first.
 * Resolves false if the home node could not be reached (nothing was relayed yet;
 * frames that arrived meanwhile were added to `early`).
 */
export function relay(client: WebSocket, target: RelayTarget, early: [Buffer, boolean][]): Promise<boolean> {
  const wsUrl = target.url.replace(/^http/, 'ws') + '/ws';
  const upstream = new WebSocket(wsUrl, { headers: target.headers, perMessageDeflate: false, handshakeTimeout: 3000 });
  return new Promise((resolve) => {
    // A client that vanished without a close is cut, which the home node then sees as a drop.
    let alive = true;
    const heartbeat = setInterval(() => {
      if (!alive) {
        client.terminate();
        return;
      }
      alive = false;
      client.ping();
    }, HEARTBEAT_MS);
    heartbeat.unref();
    client.on('pong', () => (alive = true));
    let opened = false;
    // Frames wait in `early` until the home node answers; after a failure they are still there for the next try.
    const pending = early;
    const fromClient = (data: Buffer, isBinary: boolean) => {
      if (opened) upstream.send(data, { binary: isBinary });
      else pending.push([data, isBinary]);
    };
    client.on('message', fromClient);

    upstream.on('open', () => {
      opened = true;
      for (const [data, isBinary] of pending) upstream.send(data, { binary: isBinary });
      pending.length = 0;
      resolve(true);
    });
    upstream.on('message', (data: Buffer, isBinary) => {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    });
    upstream.on('error', () => {
      if (!opened) {
        clearInterval(heartbeat);
        client.off('message', fromClient);
        upstream.terminate();
        resolve(false);
      }
    });
    // The home node ended the connection: on purpose (a `closed` notice went first) or by dying,
    // in which case the client must see a dropped connection, so it comes back and resumes.
    upstream.on('close', (code: number, reason: Buffer) => {
      clearInterval(heartbeat);
      if (!opened) return;
      if (sendable(code)) client.close(code, reason);
      else client.terminate();
    });
    client.on('close', (code: number, reason: Buffer) => {
      clearInterval(heartbeat);
      if (upstream.readyState === WebSocket.CONNECTING) return upstream.terminate();
      if (sendable(code)) upstream.close(code, reason);
      else upstream.terminate();
    });
    client.on('error', () => client.terminate());
  });
}
