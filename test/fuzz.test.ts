/**
 * Protocol fuzzing against a real server: more than 100 000 random and mutated
 * frames over hundreds of connections. Every answer must be a message the
 * protocol defines, every refusal a code from the registry with its sentence,
 * every close a documented close code — and a normal call must work afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { closeCodeFor, ERRORS, type ErrorCode } from '../src/protocol/errors.js';
import { CLIENT_MESSAGE_TYPES, clientMessage, MAX_FRAME_BYTES, serverMessage, type ServerMessage } from '../src/protocol/messages.js';
import { callOfTwo, createLink, signUp, startServer, until, type TestLink, type TestServer } from './support/server.js';

const FRAMES_GOAL = 100_000;
const FRAMES_PER_SESSION = 400;
const PARALLEL_SESSIONS = 24;

/** Close codes a client may see (docs/PROTOCOL.md): 4000 + a registry status, and these from the WebSocket layer. */
const WS_LAYER_CLOSE_CODES = new Set([1000, 1001, 1007, 1009]);
const DOCUMENTED_CLOSE_CODES = new Set([...Object.keys(ERRORS).map((c) => closeCodeFor(c as ErrorCode)), ...WS_LAYER_CLOSE_CODES]);
/** Refusals made on arrival, before any handler runs: they come back in frame order. */
const ARRIVAL_CODES = new Set<ErrorCode>(['bad_message', 'unknown_type', 'message_too_large']);

// ----------------------------------------------------------------- a seeded generator

function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof rng>;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const b64 = (r: Rng, n: number) => Array.from({ length: n }, () => B64[r.int(64)]).join('');

function validGrant(r: Rng) {
  return { approverPublicKey: b64(r, 87), recipientId: b64(r, 12), iv: b64(r, 16), wrapped: b64(r, 80), mac: b64(r, 43) };
}

/** A well-formed message of each kind (the server will still refuse most: wrong moment, wrong role). */
function template(r: Rng, type: string, linkId: string): Record<string, unknown> {
  const seq = r.int(1000);
  switch (type) {
    case 'join':
      return { type, seq, linkId: r.next() < 0.5 ? linkId : b64(r, 22), card: b64(r, 200) };
    case 'resume':
      return { type, seq, token: b64(r, 22), received: r.int(10) };
    case 'approve':
    case 'grant':
      return { type, seq, participantId: b64(r, 12), grant: validGrant(r) };
    case 'decline':
    case 'remove':
      return { type, seq, participantId: b64(r, 12) };
    case 'mediaState':
      return { type, seq, audio: r.next() < 0.5, video: r.next() < 0.5 };
    case 'publish':
    case 'subscribeAnswer':
      return { type, seq, sdp: 'v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\n' + 'a=x\r\n'.repeat(r.int(20)) };
    default:
      return { type, seq };
  }
}

function weirdValue(r: Rng): unknown {
  switch (r.int(14)) {
    case 0: return null;
    case 1: return -1;
    case 2: return 1e308;
    case 3: return 0.5;
    case 4: return '';
    case 5: return 'x'.repeat(r.int(5000));
    case 6: return [];
    case 7: return {};
    case 8: return true;
    case 9: return '\u0000\u202e<script>';
    case 10: return { nested: { deeper: [1, 2, { x: 'y' }] } };
    case 11: return 2 ** 53;
    case 12: return b64(r, 3000);
    default: return '__proto__';
  }
}

/** One frame to send: text or binary bytes. */
interface Frame {
  data: string | Buffer;
  binary: boolean;
}

function mutate(r: Rng, msg: Record<string, unknown>): string {
  const m: Record<string, unknown> = structuredClone(msg);
  const keys = Object.keys(m);
  switch (r.int(10)) {
    case 0: delete m[r.pick(keys)]; break;
    case 1: m[r.pick(['admin', 'role', 'accountId', 'extra', 'participantId', 'name'])] = weirdValue(r); break;
    case 2: m[r.pick(keys)] = weirdValue(r); break;
    case 3: m.type = r.pick(['', 'JOIN', 'teleport', 'join ', 'approve\u0000', 'constructor', 'toString', 'hasOwnProperty']); break;
    case 4: m.seq = r.pick([-1, 1.5, '7', 2 ** 32, null, 1e400]); break;
    case 5: if ('grant' in m) (m.grant as Record<string, unknown>)[r.pick(['mac', 'iv', 'evil'])] = weirdValue(r); else m.grant = validGrant(r); break;
    case 6: return JSON.stringify(m).replace(/"type"/, '"__proto__":{"type":"ping"},"type"');
    case 7: return JSON.stringify([m]);
    default: break;
  }
  return JSON.stringify(m);
}

function randomFrame(r: Rng, linkId: string): Frame {
  const type = r.pick(CLIENT_MESSAGE_TYPES as readonly string[]);
  const roll = r.int(100);
  if (roll < 20) return { data: JSON.stringify(template(r, type, linkId)), binary: false }; // valid kind, likely out of order
  if (roll < 60) return { data: mutate(r, template(r, type, linkId)), binary: false };
  if (roll < 68) {
    // Damaged JSON: truncated, or a byte changed.
    const text = JSON.stringify(template(r, type, linkId));
    const cut = r.int(text.length);
    if (r.next() < 0.5) return { data: text.slice(0, cut), binary: false };
    return { data: text.slice(0, cut) + String.fromCharCode(32 + r.int(90)) + text.slice(cut + 1), binary: false };
  }
  if (roll < 74) return { data: JSON.stringify(weirdValue(r)), binary: false };
  if (roll < 78) return { data: r.pick(['', ' ', 'null', '[]', '{}', '"ping"', '1', 'true', '{"type":null}', '{"type":{}}']), binary: false };
  if (roll < 83) return { data: Buffer.from(Array.from({ length: r.int(200) + 1 }, () => r.int(256))), binary: true };
  if (roll < 84) return { data: '['.repeat(20_000) + ']'.repeat(20_000), binary: false };
  if (roll < 85) {
    // Huge: just under, or over, the frame limit (but under the socket's hard cap).
    const size = r.next() < 0.5 ? MAX_FRAME_BYTES - 200 : MAX_FRAME_BYTES + 1 + r.int(100_000);
    return { data: JSON.stringify({ type, seq: 1, pad: 'x'.repeat(size) }), binary: false };
  }
  return { data: mutate(r, template(r, r.pick(['ping', 'join', 'teleport', 'approve']), linkId)), binary: false };
}

// ----------------------------------------------------------------- what the server must answer

type Expectation =
  | { kind: 'arrival'; code: ErrorCode; seq?: number } // refused on arrival, in order
  | { kind: 'one' } // a valid kind: exactly one answer (error or pong)
  | { kind: 'any' } // a valid kind from a host: answered as the protocol says, or not at all
  | { kind: 'skip' }; // would change the session (join/resume/leave): not sent

function seqOf(raw: unknown): number | undefined {
  const seq = (raw as { seq?: unknown } | null)?.seq;
  return typeof seq === 'number' && Number.isInteger(seq) && seq >= 0 && seq <= 2 ** 31 ? seq : undefined;
}

type Role = 'stranger' | 'knocking' | 'host';

/** What a frame must get, by the rules of docs/PROTOCOL.md. */
function expectation(frame: Frame, role: Role): Expectation {
  if (frame.binary) return { kind: 'arrival', code: 'bad_message' };
  const bytes = Buffer.byteLength(frame.data as string);
  if (bytes > MAX_FRAME_BYTES) return { kind: 'arrival', code: 'message_too_large' };
  let raw: unknown;
  try {
    raw = JSON.parse(frame.data as string);
  } catch {
    return { kind: 'arrival', code: 'bad_message' };
  }
  const parsed = clientMessage.safeParse(raw);
  if (!parsed.success) {
    const type = (raw as { type?: unknown } | null)?.type;
    const known = typeof type === 'string' && (CLIENT_MESSAGE_TYPES as string[]).includes(type);
    return { kind: 'arrival', code: known ? 'bad_message' : 'unknown_type', seq: seqOf(raw) };
  }
  const type = parsed.data.type;
  if (type === 'leave' || type === 'end') return { kind: 'skip' };
  if (type === 'join' || type === 'resume') return role === 'stranger' ? { kind: 'skip' } : { kind: 'one' };
  // A host's valid messages may get no answer (mediaState), or one later (publish). A waiting guest's
  // connections are already set up: restarting them gets `mediaRestarted` and a new offer, an answer
  // is taken or refused with media_failed, and a publish offer is answered or refused the same way.
  if (role === 'knocking' && (type === 'restartMedia' || type === 'subscribeAnswer' || type === 'publish')) return { kind: 'any' };
  return role === 'host' && type !== 'ping' ? { kind: 'any' } : { kind: 'one' };
}

/** Every message a server sends must be one the protocol defines, with the registry's sentence. */
function checkMessage(text: string): ServerMessage {
  const parsed = serverMessage.safeParse(JSON.parse(text));
  assert.ok(parsed.success, 'the server sent a message the protocol does not define');
  const m = parsed.data;
  if (m.type === 'error' || m.type === 'closed') assert.equal(m.message, ERRORS[m.code].message, m.code);
  return m;
}

interface SessionResult {
  sent: number;
  closeCode?: number;
}

/**
 * One connection: a stranger, a guest knocking in the lobby, or the host in the call,
 * sends frames; each answer is checked.
 */
async function fuzzSession(
  server: TestServer,
  link: TestLink,
  seed: number,
  frames: number,
  role: Role,
  hostCookie?: string,
): Promise<SessionResult> {
  const r = rng(seed);
  const ws = new WebSocket(server.wsUrl, { headers: role === 'host' && hostCookie ? { cookie: hostCookie } : {} });
  const received: ServerMessage[] = [];
  let closeCode: number | undefined;
  const closed = new Promise<void>((resolve) =>
    ws.on('close', (code) => {
      closeCode = code;
      resolve();
    }),
  );
  ws.on('message', (data) => received.push(checkMessage(String(data))));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });

  if (role !== 'stranger') {
    ws.send(JSON.stringify({ type: 'join', seq: 1, linkId: link.id, card: b64(r, 300) }));
    const first = role === 'host' ? 'joined' : 'waiting';
    const deadline = Date.now() + 10_000;
    while (!received.some((m) => m.type === first) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    assert.ok(received.some((m) => m.type === first), `the ${role} got ${first}`);
  }
  const before = received.length;

  const arrivals: { code: ErrorCode; seq?: number }[] = [];
  let ones = 0;
  let anys = 0;
  let sent = 0;
  while (sent < frames) {
    const frame = randomFrame(r, link.id);
    const e = expectation(frame, role);
    if (e.kind === 'skip') continue;
    if (e.kind === 'arrival') arrivals.push({ code: e.code, seq: e.seq });
    else if (e.kind === 'any') anys++;
    else ones++;
    ws.send(frame.data, { binary: frame.binary });
    sent++;
  }

  const answers = () => received.slice(before).filter((m) => m.type === 'error' || m.type === 'pong');
  const deadline = Date.now() + 20_000;
  while (answers().length < sent - anys && closeCode === undefined && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
  if (anys > 0) await new Promise((res) => setTimeout(res, 500)); // late answers (media) to a host's valid frames
  assert.equal(closeCode, undefined, `the connection stays open (closed with ${closeCode})`);
  // One more round trip, so an answer too many would show.
  const flush = 2 ** 31;
  ws.send(JSON.stringify({ type: 'ping', seq: flush }));
  while (!received.some((m) => m.type === 'pong' && m.seq === flush) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));

  const got = answers().filter((m) => !(m.type === 'pong' && m.seq === flush));
  if (anys === 0) assert.equal(got.length, sent, 'every frame got exactly one answer');
  else assert.ok(got.length >= sent - anys && got.length <= sent, 'no frame got more than one answer');
  const arrivalErrors = got.filter((m): m is Extract<ServerMessage, { type: 'error' }> => m.type === 'error' && ARRIVAL_CODES.has(m.code));
  assert.deepEqual(
    arrivalErrors.map((m) => ({ code: m.code, seq: m.seq })),
    arrivals.map((a) => ({ code: a.code, seq: a.seq })),
    'bad frames are refused in order, each with the expected code and its seq',
  );
  if (anys === 0) assert.equal(got.length - arrivalErrors.length, ones, 'each valid frame got one answer');
  for (const m of got) if (m.type === 'error') assert.ok(m.code in ERRORS);
  if (role === 'knocking') assert.ok(received.every((m) => m.type !== 'joined'), 'no frame got a guest into the call');
  if (role === 'host') assert.ok(received.every((m) => !(m.type === 'error' && m.code === 'internal')), 'no frame broke a handler');

  ws.close(1000);
  await closed;
  return { sent, closeCode };
}

/** A frame that breaks the WebSocket layer itself: the socket closes with a documented code. */
async function brokenFrameSession(server: TestServer, data: Buffer, binary: boolean): Promise<number> {
  const ws = new WebSocket(server.wsUrl);
  await new Promise((resolve) => ws.once('open', resolve));
  const code = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
  ws.on('message', (d) => checkMessage(String(d)));
  ws.on('error', () => {});
  ws.send(data, { binary });
  return code;
}

describe('protocol fuzzing against a real server', () => {
  let server: TestServer;
  let hostCookie: string;
  let link: TestLink;
  const logs: string[] = [];

  before(async () => {
    server = await startServer({
      logs,
      logLevel: 'warn',
      // Raised so the flood measures the parser, not the limits (tested below and in limits.test.ts).
      rateLimits: { wsMessagesPerSecond: 1_000_000, knocksPerLinkPerMinute: 100_000, knocksPerAddressPerMinute: 100_000 },
      roomLimits: { maxLobby: 10_000 },
    });
    hostCookie = await signUp(server, 'ana');
    link = await createLink(server, hostCookie, 'Fuzzed');
  });
  after(() => server.close());

  it(`answers ${FRAMES_GOAL}+ random and mutated frames with typed errors, then a normal call works`, async () => {
    let total = 0;
    let sessions = 0;
    let seed = 1;
    const started = Date.now();
    const worker = async () => {
      while (total < FRAMES_GOAL) {
        const mySeed = seed++;
        total += FRAMES_PER_SESSION;
        const role: Role = mySeed % 50 === 0 ? 'host' : mySeed % 3 === 0 ? 'knocking' : 'stranger';
        await fuzzSession(server, link, mySeed, FRAMES_PER_SESSION, role, hostCookie);
        sessions++;
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_SESSIONS }, worker));
    assert.ok(total >= FRAMES_GOAL);

    // Frames the WebSocket layer itself refuses: the socket closes with a documented code.
    assert.equal(await brokenFrameSession(server, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), false), 1007, 'text that is not UTF-8');
    assert.equal(await brokenFrameSession(server, Buffer.alloc(4 * MAX_FRAME_BYTES + 1, 0x20), false), 1009, 'a frame over the hard cap');
    for (const c of [1007, 1009]) assert.ok(DOCUMENTED_CLOSE_CODES.has(c));

    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200, 'the server is still up');
    assert.deepEqual(logs, [], 'bad input is routine: no warnings or errors logged');

    // A normal call on the same link, right after.
    const { host, guest } = await callOfTwo(server, link, hostCookie);
    host.call.end();
    await until(guest.call, () => guest.call.phase.kind === 'ended');
    host.signaling.close();
    guest.signaling.close();
    console.log(`# fuzz: ${total} frames over ${sessions} connections in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});

describe('the message rate limit per connection', () => {
  it('refuses messages past 40 a second (bursts of 120) with rate_limited, and closes a connection that keeps flooding', async () => {
    const server = await startServer();
    try {
      const ws = new WebSocket(server.wsUrl);
      await new Promise((resolve) => ws.once('open', resolve));
      const received: ServerMessage[] = [];
      ws.on('message', (d) => received.push(checkMessage(String(d))));
      const closed = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
      for (let i = 1; i <= 450; i++) ws.send(JSON.stringify({ type: 'ping', seq: i }));
      assert.equal(await closed, closeCodeFor('rate_limited'));
      const pongs = received.filter((m) => m.type === 'pong');
      const limited = received.filter((m) => m.type === 'error' && m.code === 'rate_limited');
      // A burst of 120 at once, plus what 40 a second refills while the frames arrive.
      assert.ok(pongs.length >= 120 && pongs.length <= 130, `the first 120 are answered (${pongs.length})`);
      assert.ok(limited.length >= 200, 'the rest are refused with a sentence');
      assert.deepEqual(received.at(-1), { type: 'closed', code: 'rate_limited', message: ERRORS.rate_limited.message });

      // A connection that slows down is fine again.
      const calm = new WebSocket(server.wsUrl);
      await new Promise((resolve) => calm.once('open', resolve));
      const answers: ServerMessage[] = [];
      calm.on('message', (d) => answers.push(checkMessage(String(d))));
      for (let i = 0; i < 130; i++) calm.send(JSON.stringify({ type: 'ping', seq: i }));
      await new Promise((resolve) => setTimeout(resolve, 1100));
      calm.send(JSON.stringify({ type: 'ping', seq: 99 }));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const refused = answers.filter((m) => m.type === 'error' && m.code === 'rate_limited').length;
      assert.ok(refused >= 1 && refused <= 10, `past the burst, refused: ${refused}`);
      assert.deepEqual(answers.at(-1), { type: 'pong', seq: 99 });
      calm.close();
    } finally {
      await server.close();
    }
  });
});
