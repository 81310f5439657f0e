/** What someone who opened a link sees: where they are, who is calling, a preview, their name, then Join. */
import type { ComponentType } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { deriveLinkKeys, fromBase64url, parseLinkFragment, toBase64url, verifyLinkInfo } from '../../e2ee/keys.js';
import type { LinkTrust } from '../../client/call.js';
import { e2eeSupported } from '../../e2ee/session.js';
import { linkId as linkIdSchema, parseDisplayName } from '../../protocol/messages.js';
import { api, ApiError, type LinkPublicInfo } from '../api.js';
import { listDevices, openWhatWorks, type DeviceChoice, type DeviceLists } from '../call/devices.js';
import { DevicePicker, MicLevel } from '../components/devices.js';
import { prepareCall, type PreparedCall } from '../call/prepare.js';
import { useLocalEffects } from '../effects/local-effects.js';
import { EffectSwitches } from '../effects/effect-switches.js';
import { linkSecrets } from '../secrets.js';
import type { CallViewProps } from './call.js';

const ALTERED = 'This link is incomplete or has been altered. Ask the person who sent it for the full link; a real linkcall link ends with “#k=” and a long code.';
/** A link whose id or secret has the wrong shape never came from linkcall as it is. */
const fakeLink = (origin: string) =>
  `This is not a complete linkcall link, so it cannot be trusted. Fake links can look like real ones: join only from links that start with ${origin}/join/ and came straight from the person you are calling. Ask them to send it again.`;

type Step = 'name' | 'ready' | 'call';

/** The call view is loaded only once someone is about to join: the join page stays small. */
let callView: Promise<ComponentType<CallViewProps>> | undefined;
const loadCallView = () => (callView ??= import('./call.js').then((m) => m.CallView));

export function JoinPage({ linkId }: { linkId: string }) {
  const [info, setInfo] = useState<LinkPublicInfo | undefined>(undefined);
  const [linkKeys, setLinkKeys] = useState<LinkTrust | undefined>(undefined);
  const [linkError, setLinkError] = useState('');
  const [step, setStep] = useState<Step>('name');
  const [name, setName] = useState('');
  const [nameError, setNameError] = useState('');
  const [stream, setStream] = useState<MediaStream | undefined>(undefined);
  const [mediaProblem, setMediaProblem] = useState('');
  const [mediaSettled, setMediaSettled] = useState(false);
  const [devices, setDevices] = useState<DeviceLists>({ cameras: [], microphones: [], speakers: [] });
  const [choice, setChoice] = useState<DeviceChoice>({});
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
          setLinkError('This browser cannot take part in end-to-end encrypted calls. Open the link in a current Chrome, Edge, Firefox or Safari.');
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
      (err) => setLinkError(err instanceof ApiError ? err.message : 'This call link could not be opened.'),
    );
  }, [linkId]);

  useEffect(() => {
    if (!info || step === 'call') return;
    let cancelled = false;
    let opened: MediaStream | undefined;
    openWhatWorks(choice).then(async ({ stream: s, problem }) => {
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
        <h1>Can't join this call</h1>
        <p role="alert">{linkError}</p>
      </main>
    );
  }
  if (!info || !linkKeys) return <main class="page narrow"><OriginBanner /><p role="status">Checking the link…</p></main>;
  if (step === 'call' && prepared && CallView) {
    return <CallView prepared={prepared} name={name} hostName={info.hostName} linkName={info.name} stream={callStream.current} effects={effects} speakerId={choice.speakerId} />;
  }

  function next(e: Event) {
    e.preventDefault();
    const parsed = parseDisplayName(name);
    if (!parsed) {
      setNameError('Enter a name of 1 to 64 characters, without control characters.');
      return;
    }
    setName(parsed);
    setNameError('');
    setStep('ready');
  }

  const camera = stream?.getVideoTracks()[0];
  const microphone = stream?.getAudioTracks()[0];
  return (
    <main class="page narrow join">
      <OriginBanner />
      <h1>{info.name}</h1>
      <p class="lede">
        Hosted by <strong>{info.hostName}</strong>{' '}
        <span class="verified">✓ verified</span>
      </p>
      <p class="muted small">
        The link's secret confirms this name and host. End-to-end encrypted: the server cannot see or hear the call, or read your name.
      </p>
      <section class="stack" aria-label="Camera and microphone">
        <div class="preview">
          <video ref={preview} autoplay playsInline muted aria-label="Your camera preview" class={!camera || startCameraOff ? 'hidden' : ''} />
          {(!camera || startCameraOff) && mediaSettled && (
            <div class="preview-off" aria-hidden="true">{camera ? 'Camera off' : 'No camera'}</div>
          )}
        </div>
        {!mediaSettled && <p role="status" class="muted small">Starting your camera and microphone…</p>}
        {mediaProblem && <p role="alert" class="notice">{mediaProblem}</p>}
        {microphone && <MicLevel track={microphone} muted={startMuted} />}
        <div class="row">
          <label class="check">
            <input type="checkbox" checked={startMuted} disabled={!microphone} onChange={(e) => setStartMuted(e.currentTarget.checked)} />
            Start muted
          </label>
          <label class="check">
            <input type="checkbox" checked={startCameraOff} disabled={!camera} onChange={(e) => setStartCameraOff(e.currentTarget.checked)} />
            Start with camera off
          </label>
        </div>
        <EffectSwitches effects={effects} camera={!!camera} microphone={!!microphone} />
        <DevicePicker devices={devices} stream={stream} choice={choice} onChoice={setChoice} />
      </section>
      {step === 'name' ? (
        <form class="stack" onSubmit={next}>
          <label>
            Name
            <input name="name" value={name} maxLength={64} autocomplete="name" onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          {nameError && <p role="alert" class="error">{nameError}</p>}
          <div class="row">
            <button type="submit">Continue</button>
          </div>
        </form>
      ) : (
        <div class="stack">
          <p>
            Joining as <strong>{name}</strong>
            {info.isOwner ? ' (host)' : ''}
            {!stream && ' — listening only'}
          </p>
          <div class="row">
            <button onClick={() => { preparedNow.current?.call.sendJoin(); callStream.current = sent; setStep('call'); }} disabled={!mediaSettled || effects.busy || !prepared || !CallView}>Join</button>
            {!info.isOwner && <button class="secondary" onClick={changeName}>Change name</button>}
          </div>
        </div>
      )}
    </main>
  );
}

/** Where you are, large: a look-alike domain is the first thing a fake link gets wrong. */
function OriginBanner() {
  return (
    <p class="origin">
      <span class="muted small">You are on</span> <strong class="origin-host">{location.host}</strong>
    </p>
  );
}
