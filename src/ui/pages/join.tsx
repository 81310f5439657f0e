/** What someone who opened a link sees: who is calling, a preview, their name, then Join. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { decodeSecret, deriveLinkKeys, verifyLinkInfo, type LinkKeys } from '../../e2ee/keys.js';
import { e2eeSupported } from '../../e2ee/session.js';
import { parseDisplayName } from '../../protocol/messages.js';
import { api, ApiError, type LinkPublicInfo } from '../api.js';
import { describeMediaError, listDevices, openLocalMedia, type DeviceChoice } from '../call/devices.js';
import { secretFromFragment } from '../secrets.js';
import { prepareCall, type PreparedCall } from '../call/prepare.js';
import { CallView } from './call.js';

const ALTERED = 'This link is incomplete or has been altered. Ask the person who sent it for the full link; a real linkcall link ends with “#k=” and a long code.';

type Step = 'name' | 'ready' | 'call';

export function JoinPage({ linkId }: { linkId: string }) {
  const [info, setInfo] = useState<LinkPublicInfo | undefined>(undefined);
  const [linkKeys, setLinkKeys] = useState<LinkKeys | undefined>(undefined);
  const [linkError, setLinkError] = useState('');
  const [step, setStep] = useState<Step>('name');
  const [name, setName] = useState('');
  const [nameError, setNameError] = useState('');
  const [stream, setStream] = useState<MediaStream | undefined>(undefined);
  const [mediaError, setMediaError] = useState('');
  const [devices, setDevices] = useState<{ cameras: MediaDeviceInfo[]; microphones: MediaDeviceInfo[] }>({ cameras: [], microphones: [] });
  const [choice, setChoice] = useState<DeviceChoice>({});
  const preview = useRef<HTMLVideoElement>(null);
  const [prepared, setPrepared] = useState<Promise<PreparedCall> | undefined>(undefined);

  // Once the name is settled, open the socket and seal the name card, so Join is instant.
  useEffect(() => {
    if (step !== 'ready' || !linkKeys || prepared) return;
    const p = prepareCall(linkId, linkKeys, name);
    p.catch(() => {});
    setPrepared(p);
  }, [step, linkKeys]);

  function changeName() {
    prepared?.then(({ signaling }) => signaling.close(), () => {});
    setPrepared(undefined);
    setStep('name');
  }

  useEffect(() => {
    api.linkInfo(linkId).then(
      async (i) => {
        // There is no unencrypted mode: a browser that cannot encrypt frames cannot join.
        if (!e2eeSupported()) {
          setLinkError('This browser cannot take part in end-to-end encrypted calls. Open the link in a current Chrome, Edge, Firefox or Safari.');
          return;
        }
        // Who is calling is shown only once the link's secret verifies it: the server cannot vouch for itself.
        const secret = decodeSecret(secretFromFragment() ?? '');
        const keys = secret && (await deriveLinkKeys(secret));
        if (!keys || !i.infoMac || !(await verifyLinkInfo(keys, linkId, { name: i.name, hostName: i.hostName }, i.infoMac))) {
          setLinkError(ALTERED);
          return;
        }
        setLinkKeys(keys);
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
    openLocalMedia(choice).then(
      async (s) => {
        if (cancelled) return s.getTracks().forEach((t) => t.stop());
        opened = s;
        setStream(s);
        setMediaError('');
        setDevices(await listDevices());
      },
      (err) => !cancelled && setMediaError(describeMediaError(err)),
    );
    return () => {
      cancelled = true;
      // A new device choice replaces the preview; the call view keeps the last one.
      opened?.getTracks().forEach((t) => t.stop());
    };
  }, [info, choice.cameraId, choice.microphoneId]);

  useEffect(() => {
    if (preview.current && stream) preview.current.srcObject = stream;
  }, [stream, step]);

  if (linkError) {
    return (
      <main class="page narrow">
        <h1>Can't join this call</h1>
        <p role="alert">{linkError}</p>
      </main>
    );
  }
  if (!info || !linkKeys) return <main class="page narrow"><p>Loading…</p></main>;
  if (step === 'call' && prepared) {
    return <CallView prepared={prepared} name={name} hostName={info.hostName} stream={stream} />;
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

  return (
    <main class="page narrow">
      <p class="muted small">{location.host}</p>
      <h1>{info.name}</h1>
      <p class="lede">
        Hosted by <strong>{info.hostName}</strong> <span class="verified" title="Checked with the secret in your link">✓ verified</span>
      </p>
      <p class="muted small">End-to-end encrypted: the server cannot see or hear the call, or read your name.</p>
      <div class="preview">
        <video ref={preview} autoplay playsInline muted aria-label="Your camera preview" />
        {!stream && !mediaError && <p role="status" class="muted small">Starting your camera…</p>}
        {mediaError && <p role="alert" class="error">{mediaError}</p>}
      </div>
      {devices.cameras.length > 0 && (
        <div class="row">
          <label>
            Camera
            <select value={choice.cameraId ?? stream?.getVideoTracks()[0]?.getSettings().deviceId} onChange={(e) => setChoice({ ...choice, cameraId: e.currentTarget.value })}>
              {devices.cameras.map((d, i) => <option key={d.deviceId} value={d.deviceId}>{d.label || `Camera ${i + 1}`}</option>)}
            </select>
          </label>
          <label>
            Microphone
            <select value={choice.microphoneId ?? stream?.getAudioTracks()[0]?.getSettings().deviceId} onChange={(e) => setChoice({ ...choice, microphoneId: e.currentTarget.value })}>
              {devices.microphones.map((d, i) => <option key={d.deviceId} value={d.deviceId}>{d.label || `Microphone ${i + 1}`}</option>)}
            </select>
          </label>
        </div>
      )}
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
          <p>Joining as <strong>{name}</strong>{info.isOwner ? ' (host)' : ''}</p>
          <div class="row">
            <button onClick={() => setStep('call')} disabled={(!stream && !mediaError) || !prepared}>Join</button>
            {!info.isOwner && <button class="secondary" onClick={changeName}>Change name</button>}
          </div>
        </div>
      )}
    </main>
  );
}
