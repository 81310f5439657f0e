/** The two switches, on the join page under the preview and in the call's device settings. */
import { t, told } from '../i18n/locale.js';
import { blurSupported, noiseSuppressionSupported, type LocalEffects } from './local-effects.js';

/** `notices={false}` where the page shows the effects' notice elsewhere (the call shows it above the grid). */
export function EffectSwitches({ effects, camera, microphone, notices = true }: { effects: LocalEffects; camera: boolean; microphone: boolean; notices?: boolean }) {
  const canBlur = blurSupported();
  const canDenoise = noiseSuppressionSupported();
  return (
    <div class="stack">
      <div class="row">
        {canBlur && (
          <label class="check">
            <input type="checkbox" role="switch" checked={effects.blur} disabled={!camera} onChange={(e) => effects.setBlur(e.currentTarget.checked)} />
            {t('effects.blur')}
          </label>
        )}
        {canDenoise && (
          <label class="check">
            <input type="checkbox" role="switch" checked={effects.denoise} disabled={!microphone} onChange={(e) => effects.setDenoise(e.currentTarget.checked)} />
            {t('effects.denoise')}
          </label>
        )}
      </div>
      {effects.busy && <p role="status" class="muted small">{t('effects.starting')}</p>}
      {notices && effects.notice && <p role="status" class="notice">{told(effects.notice)}</p>}
      {!canBlur && camera && <p class="muted small">{t('effects.noBlur')}</p>}
      {!canDenoise && microphone && <p class="muted small">{t('effects.noDenoise')}</p>}
    </div>
  );
}
