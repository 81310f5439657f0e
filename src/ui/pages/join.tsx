/** What someone who opened a link sees: where they are, who is calling, a preview, their name, then Join. */
import type { ComponentType } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { deriveLinkKeys, fromBase64url, parseLinkFragment, toBase64url, verifyLinkInfo } from '../../e2ee/keys.js';
import type { LinkTrust } from '../../client/call.js';
import { e2eeSupported } from '../../e2ee/session.js';
import { linkId as linkIdSchema } from '../../protocol/ids.js';
import { MAX_NAME_LENGTH, parseDisplayName } from '../../protocol/names.js';
import { api, ApiError, type LinkPublicInfo } from '../api.js';
import { listDevices, openWhatWorks, rememberChoice, rememberedChoice, type DeviceChoice, type DeviceLists } from '../call/devices.js';
import { DevicePicker, MicLevel } from '../components/devices.js';
import { LanguagePicker } from '../components/language-picker.js';
import { errorSaid, say, t, told, tx, type Said } from '../i18n/locale.js';
import { prepareCall, type PreparedCall } from '../call/prepare.js';
import { useLocalEffects } from '../effects/local-effects.js';
import { EffectSwitches } from '../effects/effect-switches.js';
import { linkSecrets } from '../secrets.js';
import type { CallViewProps } from './call.js';

const ALTERED = say('join.altered');
/** A link whose id or secret has the wrong shape never came from linkcall as it is. */
const fakeLink = (origin: string) => say('join.fake', { origin });
const DEVICES_OPEN_KEY = 'linkcall.devicesOpen';

type Step = 'name' | 'ready' | 'call';

/** The call view is loaded only once someone is about to join: the join page stays small. */
let callView: Promise<ComponentType<CallViewProps>> | undefined;
const loadCallView = () => (callView ??= import('./call.js').then((m) => m.CallView));

export function JoinPage({ linkId }: { linkId: string }) {
  const [info, setInfo] = useState<LinkPublicInfo | undefined>(undefined);
  const [linkKeys, setLinkKeys] = useState<LinkTrust | undefined>(undefined);
  const [linkError, setLinkError] = useState<Said | undefined>(undefined);
  const [step, setStep] = useState<Step>('name');
  const [name, setName] = useState('');
  const [nameError, setNameError] = useState(false);
  const [stream, setStream] = useState<MediaStream | undefined>(undefined);
  const [mediaProblem, setMediaProblem] = useState<Said | undefined>(undefined);
  const [mediaSettled, setMediaSettled] = useState(false);
  const [devices, setDevices] = useState<DeviceLists>({ cameras: [], microphones: [], speakers: [] });
  /** Last visit's devices: preferred, not insisted on (one may be unplugged now). */
  const remembered = useRef(rememberedChoice());
  const [choice, setChoice] = useState<DeviceChoice>(remembered.current);
  const [devicesOpen, setDevicesOpen] = useState(() => readFlag(DEVICES_OPEN_KEY));
  const [startMuted, setStartMuted] = useState(false);
  const [startCameraOff, setStartCameraOff] = useState(false);
  const preview = useRef<HTMLVideoElement>(null);
  // What the preview shows and the call sends: the devices after blur and noise suppression.
  const effects = useLocalEffects(stream);
  const sent = effects.sent;
  /** What the call was started with: fixed from Join on (the call swaps later effect changes into it itself). */
  const callStream = useRef<MediaStream | undefined>(undefined);
  const [prepared, setPrepared] = useState<Promise<PreparedCall> | undefined>(undefined);
  /** The prepared call once ready: Join sends the knock from the click itself, before any drawing. */
  const preparedNow = useRef<PreparedCall | undefined>(undefined);
  const [CallView, setCallView] = useState<ComponentType<CallViewProps> | undefined>(undefined);

  // Once the name is settled, open the socket, seal the name card and load the call view, so Join is instant.
  useEffect(() => {
    if (step !== 'ready' || !linkKeys || prepared) return;
    const p = prepareCall(linkKeys, name);
    p.then((ready) => (preparedNow.current = ready), () => {});
    setPrepared(p);
    loadCallView().then((view) => setCallView(() => view), () => {});
  }, [step, linkKeys]);

  function changeName() {
    prepared?.then(({ signaling }) => signaling.close(), () => {});
    preparedNow.current = undefined;
    setPrepared(undefined);
    setStep('name');
  }

  useEffect(() => {
    const fragment = parseLinkFragment(location.hash);
    if (!linkIdSchema.safeParse(linkId).success) {
      setLinkError(fakeLink(location.origin));
      return;
    }
    api.linkInfo(linkId).then(
      async (i) => {
        // The server's word first (deleted, expired, unknown); then the part only the link carries.
        if (!fragment) {
          setLinkError(fakeLink(location.origin));
          return;
        }
        // There is no unencrypted mode: a browser that cannot encrypt frames cannot join.
        if (!e2eeSupported()) {
          setLinkError(say('join.noE2ee'));
          return;
        }
        // Who is calling is shown only once the link's secret verifies it: the server cannot vouch for itself.
        const keys = await deriveLinkKeys(fragment.secret);
        if (!i.infoMac || !(await verifyLinkInfo(keys, linkId, { name: i.name, hostName: i.hostName }, i.infoMac))) {
          setLinkError(ALTERED);
          return;
        }
        // The host's own browser holds the signing key the link pins: with it, it is the host in the encrypted call.
        const mine = i.isOwner ? await linkSecrets.load(linkId) : undefined;
        const publicKey = mine?.hostKey && fromBase64url(mine.hostKey.publicKey);
        const signKey = mine?.hostKey && fromBase64url(mine.hostKey.signKey);
        const pinned = publicKey && toBase64url(new Uint8Array(await crypto.subtle.digest('SHA-256', publicKey))) === fragment.hostKeyHash;
        const hostKey = pinned && signKey ? { publicKey, signKey } : undefined;
        setLinkKeys({ linkId, keys, hostKeyHash: fragment.hostKeyHash, hostKey });
        setInfo(i);
        if (i.isOwner) {
          api.me().then((me) => {
            setName(me.username);
            setStep('ready');
          }, () => {});
        }
      },
      (err) => setLinkError(err instanceof ApiError ? errorSaid(err.code) : say('join.cannotOpen')),
    );
  }, [linkId]);

  useEffect(() => {
    if (!info || step === 'call') return;
    let cancelled = false;
    let opened: MediaStream | undefined;
    openWhatWorks(choice, choice === remembered.current).then(async ({ stream: s, problem }) => {
      if (cancelled) return s?.getTracks().forEach((t) => t.stop());
      opened = s;
      // Start muted / camera off apply to the tracks sent (after effects), below: the devices keep running.
      setStream(s);
      setMediaProblem(problem);
      setMediaSettled(true);
      setDevices(await listDevices().catch(() => ({ cameras: [], microphones: [], speakers: [] })));
    });
    return () => {
      cancelled = true;
      // A new device choice replaces the preview; the call view keeps the last one.
      opened?.getTracks().forEach((t) => t.stop());
    };
  }, [info, choice.cameraId, choice.microphoneId]);

  useEffect(() => {
    if (preview.current && preview.current.srcObject !== (sent ?? null)) preview.current.srcObject = sent ?? null;
  }, [sent, step, startCameraOff]);

  // Before the call only: in the call, its own mute buttons decide.
  useEffect(() => void (step !== 'call' && sent?.getAudioTracks().forEach((t) => (t.enabled = !startMuted))), [sent, startMuted]);
  useEffect(() => void (step !== 'call' && sent?.getVideoTracks().forEach((t) => (t.enabled = !startCameraOff))), [sent, startCameraOff]);

  if (linkError) {
    return (
      <main class="page narrow">
        <OriginBanner />
        <h1>{t('join.cantJoin')}</h1>
        <p role="alert">{told(linkError)}</p>
      </main>
    );
  }
  if (!info || !linkKeys) return <main class="page narrow"><OriginBanner /><p role="status">{t('join.checking')}</p></main>;
  if (step === 'call' && prepared && CallView) {
    return <CallView prepared={prepared} name={name} hostName={info.hostName} linkName={info.name} stream={callStream.current} effects={effects} speakerId={choice.speakerId} />;
  }

  function next(e: Event) {
    e.preventDefault();
    const parsed = parseDisplayName(name);
    if (!parsed) {
      setNameError(true);
      return;
    }
    setName(parsed);
    setNameError(false);
    setStep('ready');
  }

  function choose(next: DeviceChoice) {
    setChoice(next);
    rememberChoice(next);
  }
  function toggleDevices() {
    setDevicesOpen(!devicesOpen);
    writeFlag(DEVICES_OPEN_KEY, !devicesOpen);
  }

  const camera = stream?.getVideoTracks()[0];
  const microphone = stream?.getAudioTracks()[0];
  // Phone first: who is calling, the preview, then Name and Continue; the rest below the fold.
  return (
    <main class="page narrow join">
      <OriginBanner />
      <h1 dir="auto" translate={false}>{info.name}</h1>
      <p class="lede host-line">
        {tx('join.hostedBy', { host: <strong dir="auto" translate={false}>{info.hostName}</strong> })}{' '}
        <span class="verified">{t('join.verified')}</span>
      </p>
      <section class="stack" aria-label={t('join.cameraAndMic')}>
        <div class="preview">
          <video ref={preview} autoplay playsInline muted aria-label={t('join.preview')} class={!camera || startCameraOff ? 'hidden' : ''} />
          {(!camera || startCameraOff) && mediaSettled && (
            <div class="preview-off" aria-hidden="true">{camera ? t('join.cameraOff') : t('join.noCamera')}</div>
          )}
        </div>
        {!mediaSettled && <p role="status" class="muted small">{t('join.starting')}</p>}
        {mediaProblem && <p role="alert" class="notice">{told(mediaProblem)}</p>}
      </section>
      {step === 'name' ? (
        <form class="stack" onSubmit={next}>
          <label>
            {t('join.name')}
            <input name="name" dir="auto" value={name} maxLength={MAX_NAME_LENGTH} autocomplete="name" onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          {nameError && <p role="alert" class="error">{t('join.badName')}</p>}
          <div class="row">
            <button type="submit">{t('join.continue')}</button>
          </div>
        </form>
      ) : (
        <div class="stack">
          <p>
            {tx(info.isOwner ? 'join.joiningAsHost' : 'join.joiningAs', { name: <strong dir="auto" translate={false}>{name}</strong> })}
            {!stream && <> {t('join.listeningOnly')}</>}
          </p>
          <div class="row">
            <button onClick={() => { preparedNow.current?.call.sendJoin(); callStream.current = sent; setStep('call'); }} disabled={!mediaSettled || effects.busy || !prepared || !CallView}>{t('join.join')}</button>
            {!info.isOwner && <button class="secondary" onClick={changeName}>{t('join.changeName')}</button>}
          </div>
        </div>
      )}
      <section class="stack" aria-label={t('devices.devices')}>
        {microphone && <MicLevel track={microphone} muted={startMuted} />}
        <div class="row">
          <label class="check">
            <input type="checkbox" checked={startMuted} disabled={!microphone} onChange={(e) => setStartMuted(e.currentTarget.checked)} />
            {t('join.startMuted')}
          </label>
          <label class="check">
            <input type="checkbox" checked={startCameraOff} disabled={!camera} onChange={(e) => setStartCameraOff(e.currentTarget.checked)} />
            {t('join.startCameraOff')}
          </label>
        </div>
        {/* Below Name and Continue (a phone's first screen), shown without opening Devices: the switches and their notices. */}
        <EffectSwitches effects={effects} camera={!!camera} microphone={!!microphone} />
        <div>
          <button type="button" class="secondary disclosure" aria-expanded={devicesOpen} aria-controls="join-devices" onClick={toggleDevices}>
            {t('devices.devices')}
          </button>
          <div id="join-devices" hidden={!devicesOpen}>
            <DevicePicker devices={devices} stream={stream} choice={choice} onChoice={choose} />
          </div>
        </div>
      </section>
      <p class="muted small">{t('join.trust')}</p>
      <p class="small"><a href="/check">{t('check.link')}</a></p>
      <LanguagePicker />
    </main>
  );
}

function readFlag(key: string): boolean {
  try {
    return localStorage.getItem(key) === '1';
  } catch {
    return false;
  }
}
function writeFlag(key: string, on: boolean): void {
  try {
    localStorage.setItem(key, on ? '1' : '0');
  } catch {
    // not remembered
  }
}

/** Where you are, large: a look-alike domain is the first thing a fake link gets wrong. */
function OriginBanner() {
  return (
    <p class="origin">
      <span class="muted small">{t('join.youAreOn')}</span> <strong class="origin-host" dir="ltr" translate={false}>{location.host}</strong>
    </p>
  );
}
