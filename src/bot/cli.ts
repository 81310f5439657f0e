/**
 * Put bots into a call:
 *
 *   npx tsx src/bot/cli.ts --url 'http://127.0.0.1:8080/join/<id>#k=<secret>' --count 8 --name Bot
 *
 * Bots knock as "<name> 1" … "<name> N" and wait to be let in. Options:
 *   --layers q,h,f     simulcast layers to send (q 320×180, h 640×360, f 1280×720; default q,h,f)
 *   --audio tone|silence|off   (default tone)      --speakers N   only the first N bots send a tone (default all)
 *   --cookie 'lc_session=…'   enter as the link's owner (the first bot only) and --admit every knock
 *   --host-key <signKey>.<publicKey>   the host's signing key, base64url (read from the LINKCALL_HOST_KEY
 *                      environment variable when not given): with it the first bot is the host in the encrypted call
 *   --bind 127.0.0.1   address ICE binds to      --stagger 200   ms between two bots' knocks
 *   --tile 320x180     how large the bot shows everyone's video (the SFU picks layers to fit); 'full': any size
 *   --watch PREFIX     show only the people whose name starts with PREFIX (the SFU sends the others' video to nobody here)
 *   --seconds N        leave after N seconds (default: until Ctrl-C)
 *   --every N          print a summary every N seconds (default 5)
 *   --json             print one JSON line of counts per interval instead (for bench/room.ts)
 * Prints counts only: never keys, secrets, names or frame bytes.
 */
import nodeDataChannel from 'node-datachannel';
import { parseArgs } from 'node:util';
import { deriveLinkKeys, fromBase64url } from '../e2ee/keys.js';
import { Bot, parseJoinLink, type BotStats } from './bot.js';
import { LAYERS, loadFixtures, type LayerName } from './fixtures.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    count: { type: 'string', default: '1' },
    name: { type: 'string', default: 'Bot' },
    first: { type: 'string', default: '1' },
    layers: { type: 'string', default: 'q,h,f' },
    audio: { type: 'string', default: 'tone' },
    speakers: { type: 'string' },
    cookie: { type: 'string' },
    'host-key': { type: 'string' },
    admit: { type: 'boolean', default: false },
    bind: { type: 'string' },
    stagger: { type: 'string', default: '200' },
    seconds: { type: 'string' },
    every: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
    tile: { type: 'string', default: '320x180' },
    watch: { type: 'string' },
  },
});

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

if (!values.url) fail('usage: npx tsx src/bot/cli.ts --url <call link with #k=…> [--count N] [--name Bot]');
const link = (() => {
  try {
    return parseJoinLink(values.url!);
  } catch (err) {
    return fail((err as Error).message);
  }
})();
const count = Number(values.count);
const first = Number(values.first);
const layers = values.layers!.split(',').filter((l) => l) as LayerName[];
if (!Number.isInteger(count) || count < 1) fail('--count must be a positive integer');
if (layers.some((l) => !LAYERS.includes(l))) fail('--layers takes q, h and f');
const audio = values.audio as 'tone' | 'silence' | 'off';
if (!['tone', 'silence', 'off'].includes(audio)) fail('--audio is tone, silence or off');
const speakers = values.speakers === undefined ? count : Number(values.speakers);
const tile = (() => {
  if (values.tile === 'full') return 'full' as const;
  const m = /^(\d+)x(\d+)$/.exec(values.tile!);
  return m ? { width: Number(m[1]), height: Number(m[2]) } : fail('--tile is WIDTHxHEIGHT (e.g. 320x180) or full');
})();

/** Tries to connect and knock before a bot gives up. */
const JOIN_ATTEMPTS = 4;

const fixtures = loadFixtures();
const linkKeys = await deriveLinkKeys(link.secret);
const hostKeyText = values['host-key'] ?? process.env.LINKCALL_HOST_KEY;
const [signKey, publicKey] = (hostKeyText ?? '').split('.').map((part) => fromBase64url(part));
const hostKey = signKey && publicKey ? { signKey, publicKey } : undefined;
const bots: Bot[] = [];
let stopping = false;

async function stop(code = 0): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.all(bots.map((b) => b.leave(3000)));
    nodeDataChannel.cleanup();
  }
  process.exit(code);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

function summary(all: BotStats[], elapsed: number, previous: Map<string, number>): string {
  const inCall = all.filter((s) => s.phase === 'in-call').length;
  const rates: number[] = [];
  let freezes = 0;
  for (const s of all) {
    for (const r of s.received) {
      if (r.kind !== 'video') continue;
      const key = `${s.id}>${r.peerId}`;
      rates.push((r.authenticatedFrames - (previous.get(key) ?? 0)) / elapsed);
      previous.set(key, r.authenticatedFrames);
      freezes += r.freezes;
    }
  }
  rates.sort((a, b) => a - b);
  const at = (q: number) => (rates.length ? rates[Math.min(rates.length - 1, Math.floor(q * rates.length))]!.toFixed(1) : '-');
  return `${inCall}/${all.length} bots in the call; authenticated video frames/s per sender: min ${at(0)}, median ${at(0.5)}, max ${at(1)} over ${rates.length} streams; freezes so far ${freezes}`;
}

/** Per bot (by index in `bots`): how to knock again, how often it has, and not before when. */
const rejoin = new Map<number, { join: () => Promise<Bot>; tries: number; busy: boolean; notBefore: number }>();
/**
 * A full lobby, or a link knocked at too often this minute, turns a knock away; a person would press
 * Join again a little later, and so does a bot: 2 s later, then 4, 6 … up to 15 s apart (the link's
 * knock limit counts per minute: knocking every second would spend every try within it).
 */
const KNOCK_RETRIES = 20;
const KNOCK_AGAIN_AFTER = new Set(['lobby_full', 'rate_limited']);
const knockAgainInMs = (tries: number) => Math.min(15_000, 2000 * tries);

for (let i = 0; i < count; i++) {
  const host = i === 0 && values.cookie !== undefined;
  const speaking = i < speakers;
  const join = () =>
    Bot.join({
      link,
      linkKeys,
      fixtures,
      name: `${values.name} ${first + i}`,
      cookie: host ? values.cookie : undefined,
      hostKey: host ? hostKey : undefined,
      admitAll: values.admit && (host || values.cookie === undefined),
      layers,
      audio: audio === 'tone' && !speaking ? 'silence' : audio,
      bindAddress: values.bind,
      tile,
      watch: values.watch === undefined ? undefined : (p) => (p.name ?? '').startsWith(values.watch!),
    });
  // A busy machine may miss a connection's deadline: a few more tries, a second apart.
  let bot: Bot | undefined;
  for (let attempt = 1; !bot && attempt <= JOIN_ATTEMPTS; attempt++) {
    bot = await join().catch(async (err: Error) => {
      // Without the host nobody is let in; any other bot is left out and the rest go on.
      if (attempt === JOIN_ATTEMPTS) {
        if (host) fail(`bot ${first + i} (the host) could not join: ${err.message}`);
        process.stderr.write(`bot ${first + i} could not join and is left out: ${err.message}\n`);
      } else {
        await new Promise((r) => setTimeout(r, 1000 * attempt));
      }
      return undefined;
    });
  }
  if (bot) {
    rejoin.set(bots.length, { join, tries: 0, busy: false, notBefore: 0 });
    bots.push(bot);
  }
  if (i < count - 1) await new Promise((r) => setTimeout(r, Number(values.stagger)));
}
if (bots.length === 0) fail('no bot could join');
if (!values.json) process.stdout.write(`${bots.length} bots knocked; waiting to be let in…\n`);

const every = Number(values.every) * 1000;
const previous = new Map<string, number>();
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  const all = bots.map((b) => b.stats());
  for (const [i, s] of all.entries()) {
    const again = rejoin.get(i);
    if (!KNOCK_AGAIN_AFTER.has(s.endedWith ?? '') || !again || again.busy || again.tries >= KNOCK_RETRIES || stopping) continue;
    if (now < again.notBefore) continue;
    again.busy = true;
    again.tries++;
    again.notBefore = now + knockAgainInMs(again.tries);
    void again
      .join()
      .then((bot) => (stopping ? bot.close() : void (bots[i] = bot)))
      .catch(() => {})
      .finally(() => (again.busy = false));
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ at: Date.now(), bots: all })}\n`);
  else process.stdout.write(`${summary(all, (now - last) / 1000, previous)}\n`);
  last = now;
  if (all.every((s) => s.phase === 'ended')) void stop(1);
}, every);
if (values.seconds) setTimeout(() => void stop(), Number(values.seconds) * 1000);
