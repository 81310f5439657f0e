/**
 * "Check my connection" (`/check`): camera and microphone (preview and level meter), speakers (a
 * test tone), and which network paths reach this server, with their round-trip time, then a
 * verdict in a plain sentence. Each path is a connection with one data channel to the server's
 * ConnectionProbe: directly (no ICE servers), then through the server's TURN over UDP, TCP and
 * TLS (relay only). Nothing third-party is asked. Loaded only on this page (main.tsx).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type IceServer } from '../api.js';
import { MicLevel } from '../components/devices.js';
import { LanguagePicker } from '../components/language-picker.js';
import { t, type MessageKey } from '../i18n/locale.js';

type PathName = 'direct' | 'turnUdp' | 'turnTcp' | 'turnTls';
interface PathResult {
  path: PathName;
  /** undefined while checking */
  ok?: boolean;
  rttMs?: number;
}
type DeviceState = { kind: 'asking' } | { kind: 'ok'; stream: MediaStream } | { kind: 'denied' } | { kind: 'none' };

const PATH_LABEL: Record<PathName, MessageKey> = {
  direct: 'check.pathDirect',
  turnUdp: 'check.pathTurnUdp',
  turnTcp: 'check.pathTurnTcp',
  turnTls: 'check.pathTurnTls',
};
const CONNECT_TIMEOUT_MS = 8000;
const GATHER_TIMEOUT_MS = 4000;
const PINGS = 5;

/** Which TURN URL serves which path: turns: is TLS, turn:…transport=tcp TCP, any other turn: UDP. */
function pathOf(url: string): PathName | undefined {
  if (url.startsWith('turns:')) return 'turnTls';
  if (!url.startsWith('turn:')) return undefined;
  return /[?&]transport=tcp\b/i.test(url) ? 'turnTcp' : 'turnUdp';
}

function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** Connects one path to the server and measures its round trip (median of a few echoes); undefined when it does not get through. */
async function probe(config: RTCConfiguration): Promise<number | undefined> {
  const pc = new RTCPeerConnection(config);
  try {
    const channel = pc.createDataChannel('check');
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    // A refused or malformed answer throws: this path does not get through.
    const answer = await api.checkOffer(pc.localDescription!.sdp);
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    const opened = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), CONNECT_TIMEOUT_MS);
      channel.addEventListener('open', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!opened) return undefined;
    const rtts: number[] = [];
    for (let i = 0; i < PINGS; i++) {
      const sent = performance.now();
      const echoed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 2000);
        channel.addEventListener('message', () => {
          clearTimeout(timer);
          resolve(true);
        }, { once: true });
        channel.send(`ping ${i}`);
      });
      if (echoed) rtts.push(performance.now() - sent);
    }
    if (rtts.length === 0) return undefined;
    rtts.sort((a, b) => a - b);
    return rtts[Math.floor(rtts.length / 2)];
  } catch {
    return undefined;
  } finally {
    pc.close();
  }
}

/** The paths this server offers, each checked at once. */
async function checkNetwork(onResult: (r: PathResult[], tlsOn443: boolean) => void): Promise<void> {
  let ice: { iceServers: IceServer[] } = { iceServers: [] };
  try {
    ice = await api.checkIce();
  } catch {
    // No ICE servers: only the direct path is checked.
  }
  const paths: { path: PathName; config: RTCConfiguration }[] = [{ path: 'direct', config: { iceServers: [] } }];
  for (const server of ice.iceServers) {
    for (const url of server.urls) {
      const path = pathOf(url);
      if (!path || paths.some((p) => p.path === path)) continue;
      paths.push({ path, config: { iceServers: [{ ...server, urls: [url] }], iceTransportPolicy: 'relay' } });
    }
  }
  // Port 443 for TLS is what gets through firewalls that let only web traffic out.
  const tlsOn443 = ice.iceServers.some((s) => s.urls.some((u) => /^turns:[^?]*:443(?:\?|$)/.test(u) || /^turns:[^:?]*(?:\?|$)/.test(u)));
  const results: PathResult[] = paths.map(({ path }) => ({ path }));
  onResult([...results], tlsOn443);
  await Promise.all(
    paths.map(async ({ path, config }, i) => {
      const rtt = await probe(config);
      results[i] = { path, ok: rtt !== undefined, ...(rtt !== undefined ? { rttMs: Math.round(rtt) } : {}) };
      onResult([...results], tlsOn443);
    }),
  );
}

/** The sentence a person reads, once every path has answered. */
function verdict(results: PathResult[], tlsOn443: boolean): MessageKey | undefined {
  if (results.some((r) => r.ok === undefined)) return undefined;
  const ok = (p: PathName) => results.some((r) => r.path === p && r.ok);
  if (ok('direct')) return 'check.verdictDirect';
  if (ok('turnUdp')) return 'check.verdictRelayUdp';
  if (ok('turnTls') && tlsOn443) return 'check.verdictRelay443';
  if (ok('turnTcp') || ok('turnTls')) return 'check.verdictRelayTcp';
  return 'check.verdictNone';
}

function Devices() {
  const [state, setState] = useState<DeviceState>({ kind: 'asking' });
  const video = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    let stream: MediaStream | undefined;
    let gone = false;
    navigator.mediaDevices
      .getUserMedia({ video: true, audio: true })
      .then((s) => {
        stream = s;
        if (gone) s.getTracks().forEach((track) => track.stop());
        else setState({ kind: 'ok', stream: s });
      })
      .catch((err: unknown) => {
        const name = err instanceof DOMException ? err.name : '';
        if (!gone) setState({ kind: name === 'NotFoundError' || name === 'OverconstrainedError' ? 'none' : 'denied' });
      });
    return () => {
      gone = true;
      stream?.getTracks().forEach((track) => track.stop());
    };
  }, []);
  useEffect(() => {
    if (state.kind === 'ok' && video.current) video.current.srcObject = state.stream;
  }, [state]);
  const mic = state.kind === 'ok' ? state.stream.getAudioTracks()[0] : undefined;
  return (
    <section class="card stack" aria-labelledby="check-devices">
      <h2 id="check-devices">{t('check.devices')}</h2>
      {state.kind === 'asking' && <p>{t('check.checking')}</p>}
      {state.kind === 'denied' && <p role="alert">{t('check.cameraDenied')}</p>}
      {state.kind === 'none' && <p role="alert">{t('check.noDevices')}</p>}
      {state.kind === 'ok' && (
        <>
          <video ref={video} class="preview" autoplay muted playsInline aria-label={t('check.preview')} />
          {mic && <MicLevel track={mic} muted={false} />}
          <p role="status">{t('check.devicesOk')}</p>
        </>
      )}
    </section>
  );
}

function Speakers() {
  const [played, setPlayed] = useState(false);
  const play = () => {
    const ctx = new AudioContext();
    const tone = ctx.createOscillator();
    const gain = ctx.createGain();
    tone.frequency.value = 440;
    gain.gain.setValueAtTime(0.2, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.8);
    tone.connect(gain).connect(ctx.destination);
    tone.start();
    tone.stop(ctx.currentTime + 0.8);
    tone.onended = () => void ctx.close().catch(() => {});
    setPlayed(true);
  };
  return (
    <section class="card stack" aria-labelledby="check-speakers">
      <h2 id="check-speakers">{t('check.speakers')}</h2>
      <div>
        <button class="secondary" onClick={play}>{t('check.playSound')}</button>
      </div>
      {played && <p role="status">{t('check.soundPlayed')}</p>}
    </section>
  );
}

function Network() {
  const [results, setResults] = useState<PathResult[]>([]);
  const [tlsOn443, setTlsOn443] = useState(false);
  const [run, setRun] = useState(0);
  useEffect(() => {
    let gone = false;
    setResults([]);
    void checkNetwork((r, on443) => {
      if (gone) return;
      setResults(r);
      setTlsOn443(on443);
    });
    return () => {
      gone = true;
    };
  }, [run]);
  const sentence = verdict(results, tlsOn443);
  const done = sentence !== undefined;
  return (
    <section class="card stack" aria-labelledby="check-network" aria-busy={!done}>
      <h2 id="check-network">{t('check.network')}</h2>
      <ul class="stack" aria-label={t('check.network')}>
        {results.map((r) => (
          <li key={r.path}>
            {t(PATH_LABEL[r.path])}: {r.ok === undefined ? t('check.checking') : r.ok ? t('check.works', { ms: r.rttMs ?? 0 }) : t('check.blocked')}
          </li>
        ))}
      </ul>
      {done ? <p role="status" class="lede">{t(sentence)}</p> : <p>{t('check.checking')}</p>}
      <div>
        <button class="secondary" disabled={!done} onClick={() => setRun((n) => n + 1)}>{t('check.again')}</button>
      </div>
    </section>
  );
}

export function CheckPage() {
  useEffect(() => {
    document.title = `${t('check.title')} · ${t('app.title')}`;
  }, []);
  return (
    <main class="page narrow stack">
      <header class="row spread">
        <h1>{t('check.title')}</h1>
        <LanguagePicker />
      </header>
      <p class="lede">{t('check.intro')}</p>
      <Devices />
      <Speakers />
      <Network />
      <a href="/">{t('app.goHome')}</a>
    </main>
  );
}
