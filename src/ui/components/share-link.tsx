/** Copy (with "Copied"), the system share sheet where there is one, and a QR code for phones. */
import { useEffect, useState } from 'preact/hooks';
import { t } from '../i18n/locale.js';
import { QrCode } from './qr-code.js';

interface Props {
  url: string;
  /** The link's name, for the share sheet and for telling several links' buttons apart. */
  name: string;
  /** Accessible-name suffix for list rows ("Copy link Family call"); none for the main link. */
  labelSuffix?: string;
  /** Show the QR code at once (the newly created link) or behind a button (list rows). */
  qrOpen?: boolean;
}

export function ShareLink({ url, name, labelSuffix, qrOpen = false }: Props) {
  const [copied, setCopied] = useState(false);
  const [problem, setProblem] = useState('');
  const [showQr, setShowQr] = useState(qrOpen);
  useEffect(() => setCopied(false), [url]);

  async function copy() {
    setProblem('');
    try {
      await navigator.clipboard.writeText(url);
      setCopied(true);
      setTimeout(() => setCopied(false), 4000);
    } catch {
      setProblem(t('share.copyBlocked'));
    }
  }

  const canShare = typeof navigator.share === 'function' && (navigator.canShare?.({ url }) ?? true);
  return (
    <div class="stack share">
      <div class="row">
        <button class={labelSuffix ? 'secondary' : ''} aria-label={labelSuffix ? t('share.copyNamed', { name: labelSuffix }) : undefined} onClick={() => void copy()}>
          {t('share.copy')}
        </button>
        {canShare && (
          <button
            class="secondary"
            aria-label={labelSuffix ? t('share.shareNamed', { name: labelSuffix }) : undefined}
            onClick={() => navigator.share({ title: name, text: t('share.shareText', { name }), url }).catch(() => {})}
          >
            {t('share.share')}
          </button>
        )}
        {!qrOpen && (
          <button class="secondary" aria-expanded={showQr} aria-label={labelSuffix ? t('share.qrNamed', { name: labelSuffix }) : t('share.qr')} onClick={() => setShowQr(!showQr)}>
            {t('share.qr')}
          </button>
        )}
        <span role="status" class="ok-text">{copied ? t('share.copied') : ''}</span>
      </div>
      {problem && <p role="alert" class="error">{problem}</p>}
      {showQr && (
        <figure class="qr-figure">
          <QrCode text={url} label={t('share.qr')} />
          <figcaption class="muted small">{t('share.scan')}</figcaption>
        </figure>
      )}
    </div>
  );
}
