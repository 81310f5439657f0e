/**
 * Just enough of a TURN client (RFC 5766 / 8656 over UDP) to ask a TURN server for an
 * allocation with long-term credentials and see whether it grants it: for tests of
 * coturn with linkcall's credentials, and to see that coturn is up.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';

const MAGIC_COOKIE = 0x2112a442;
const BINDING_REQUEST = 0x0001;
const ALLOCATE_REQUEST = 0x0003;
const REFRESH_REQUEST = 0x0004;
const ATTR = {
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  LIFETIME: 0x000d,
  REALM: 0x0014,
  NONCE: 0x0015,
  XOR_RELAYED_ADDRESS: 0x0016,
  REQUESTED_TRANSPORT: 0x0019,
};

interface Message {
  type: number;
  attributes: Map<number, Buffer>;
}

function encode(type: number, transactionId: Buffer, attributes: [number, Buffer][], integrityKey?: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const [attrType, value] of attributes) {
    const header = Buffer.alloc(4);
    header.writeUInt16BE(attrType, 0);
    header.writeUInt16BE(value.length, 2);
    parts.push(header, value, Buffer.alloc((4 - (value.length % 4)) % 4));
  }
  let body = Buffer.concat(parts);
  const head = Buffer.alloc(20);
  head.writeUInt16BE(type, 0);
  head.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(head, 8);
  if (integrityKey) {
    // The length covers MESSAGE-INTEGRITY itself (4 + 20 bytes); the HMAC covers everything before it.
    head.writeUInt16BE(body.length + 24, 2);
    const mac = createHmac('sha1', integrityKey).update(Buffer.concat([head, body])).digest();
    const attr = Buffer.alloc(4);
    attr.writeUInt16BE(ATTR.MESSAGE_INTEGRITY, 0);
    attr.writeUInt16BE(20, 2);
    body = Buffer.concat([body, attr, mac]);
  }
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function decode(buf: Buffer): Message & { transactionId: Buffer } {
  const type = buf.readUInt16BE(0);
  const length = buf.readUInt16BE(2);
  const attributes = new Map<number, Buffer>();
  for (let o = 20; o + 4 <= 20 + length; ) {
    const t = buf.readUInt16BE(o);
    const l = buf.readUInt16BE(o + 2);
    attributes.set(t, buf.subarray(o + 4, o + 4 + l));
    o += 4 + l + ((4 - (l % 4)) % 4);
  }
  return { type, attributes, transactionId: buf.subarray(8, 20) };
}

function errorCode(m: Message): number | undefined {
  const e = m.attributes.get(ATTR.ERROR_CODE);
  return e ? (e[2]! & 0x7) * 100 + e[3]! : undefined;
}

/** One UDP socket: coturn ties nonces and allocations to the client's address and port. */
class Session {
  private readonly socket = createSocket('udp4');
  private readonly waiting = new Map<string, (m: Message) => void>();

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.socket.on('message', (data) => {
      const m = decode(data);
      this.waiting.get(m.transactionId.toString('hex'))?.(m);
    });
    this.socket.on('error', () => {});
  }

  /** One request, one answer (UDP: resent every 300 ms until something comes back). */
  async transact(build: (transactionId: Buffer) => Buffer, timeoutMs = 3000): Promise<Message> {
    const transactionId = randomBytes(12);
    const key = transactionId.toString('hex');
    const request = build(transactionId);
    let deadline: NodeJS.Timeout | undefined;
    let resend: NodeJS.Timeout | undefined;
    try {
      return await new Promise<Message>((resolve, reject) => {
        deadline = setTimeout(() => reject(new Error(`no answer from ${this.host}:${this.port}`)), timeoutMs);
        this.waiting.set(key, resolve);
        const send = () => this.socket.send(request, this.port, this.host);
        send();
        resend = setInterval(send, 300);
      });
    } finally {
      this.waiting.delete(key);
      clearTimeout(deadline);
      clearInterval(resend);
    }
  }

  close(): void {
    this.socket.close();
  }
}

/** Whether something answers STUN binding requests there. */
export async function stunBinding(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  const session = new Session(host, port);
  try {
    const answer = await session.transact((id) => encode(BINDING_REQUEST, id, []), timeoutMs);
    return answer.type === 0x0101;
  } finally {
    session.close();
  }
}

export type AllocateResult = { ok: true; relayedPort: number } | { ok: false; error: number | undefined };

/**
 * Allocate a UDP relay with long-term credentials (the TURN REST username and password
 * linkcall hands out), then release it. `ok: false` carries the TURN error code (401: refused).
 */
export async function turnAllocate(host: string, port: number, username: string, password: string): Promise<AllocateResult> {
  const session = new Session(host, port);
  try {
    const transport = Buffer.from([17, 0, 0, 0]);
    // First without credentials: the server answers 401 with its realm and a nonce.
    const challenge = await session.transact((id) => encode(ALLOCATE_REQUEST, id, [[ATTR.REQUESTED_TRANSPORT, transport]]));
    const realm = challenge.attributes.get(ATTR.REALM);
    const nonce = challenge.attributes.get(ATTR.NONCE);
    if (errorCode(challenge) !== 401 || !realm || !nonce) return { ok: false, error: errorCode(challenge) };
    const key = createHash('md5').update(`${username}:${realm.toString()}:${password}`).digest();
    const signed = (type: number, extra: [number, Buffer][]) => (id: Buffer) =>
      encode(type, id, [...extra, [ATTR.USERNAME, Buffer.from(username)], [ATTR.REALM, realm], [ATTR.NONCE, nonce]], key);
    const answer = await session.transact(signed(ALLOCATE_REQUEST, [[ATTR.REQUESTED_TRANSPORT, transport]]));
    if (answer.type !== 0x0103) return { ok: false, error: errorCode(answer) };
    const relayed = answer.attributes.get(ATTR.XOR_RELAYED_ADDRESS);
    const relayedPort = relayed ? relayed.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16) : 0;
    // Release it: a Refresh with lifetime 0 ends the allocation.
    await session.transact(signed(REFRESH_REQUEST, [[ATTR.LIFETIME, Buffer.from([0, 0, 0, 0])]]), 1000).catch(() => undefined);
    return { ok: true, relayedPort };
  } finally {
    session.close();
  }
}
