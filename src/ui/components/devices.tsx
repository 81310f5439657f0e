/** Device choice (camera, microphone, speaker) and a live microphone meter: on the join page and in the call. */
import { useEffect, useState } from 'preact/hooks';
import type { DeviceChoice, DeviceLists } from '../call/devices.js';
import { LevelMeter } from '../call/levels.js';
import { t } from '../i18n/locale.js';

export function DevicePicker({ devices, stream, choice, onChoice }: { devices: DeviceLists; stream?: MediaStream; choice: DeviceChoice; onChoice: (c: DeviceChoice) => void }) {
  const current = (kind: 'audio' | 'video') => (kind === 'audio' ? stream?.getAudioTracks() : stream?.getVideoTracks())?.[0]?.getSettings().deviceId;
  if (devices.cameras.length + devices.microphones.length + devices.speakers.length === 0) return null;
  return (
    <div class="row devices">
      {devices.cameras.length > 0 && (
        <label>
          {t('devices.camera')}
          <select value={choice.cameraId ?? current('video')} onChange={(e) => onChoice({ ...choice, cameraId: e.currentTarget.value })}>
            {devices.cameras.map((d, i) => <DeviceOption key={d.deviceId} device={d} fallback={t('devices.cameraN', { n: i + 1 })} />)}
          </select>
        </label>
      )}
      {devices.microphones.length > 0 && (
        <label>
          {t('devices.microphone')}
          <select value={choice.microphoneId ?? current('audio')} onChange={(e) => onChoice({ ...choice, microphoneId: e.currentTarget.value })}>
            {devices.microphones.map((d, i) => <DeviceOption key={d.deviceId} device={d} fallback={t('devices.microphoneN', { n: i + 1 })} />)}
          </select>
        </label>
      )}
      {devices.speakers.length > 0 && (
        <label>
          {t('devices.speaker')}
          <select value={choice.speakerId ?? 'default'} onChange={(e) => onChoice({ ...choice, speakerId: e.currentTarget.value })}>
            {devices.speakers.map((d, i) => <DeviceOption key={d.deviceId} device={d} fallback={t('devices.speakerN', { n: i + 1 })} />)}
          </select>
        </label>
      )}
    </div>
  );
}

/** A device as the system names it (not ours to translate), else "Camera 2". */
function DeviceOption({ device, fallback }: { device: MediaDeviceInfo; fallback: string }) {
  return device.label ? <option value={device.deviceId} translate={false} dir="auto">{device.label}</option> : <option value={device.deviceId}>{fallback}</option>;
}

/** A live microphone meter, so people see they can be heard before joining. */
export function MicLevel({ track, muted }: { track: MediaStreamTrack; muted: boolean }) {
  const [level, setLevel] = useState(0);
  useEffect(() => {
    const meter = new LevelMeter(track);
    const timer = setInterval(() => setLevel(meter.level()), 100);
    return () => {
      clearInterval(timer);
      meter.close();
    };
  }, [track]);
  return (
    <label class="meter-label">
      <span class="small">{muted ? t('devices.micMuted') : t('devices.micLevel')}</span>
      <meter min={0} max={1} low={0.25} high={0.9} optimum={0.5} value={muted ? 0 : level} />
    </label>
  );
}
