/** Copy (with "Copied"), the system share sheet where there is one, and a QR code for phones. */
import { useEffect, useState } from 'preact/hooks';
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
  const suffix = labelSuffix ? ` ${labelSuffix}` : '';

  async function copy() {
    setProblem('');
    try {
      await navigator.clipboard.writeText(url);
      setCopied(true);
      setTimeout(() => setCopied(false), 4000);
    } catch {
      setProblem('Copying is blocked here. Select the link and copy it yourself.');
    }
  }

  const canShare = typeof navigator.share === 'function' && (navigator.canShare?.({ url }) ?? true);
  return (
    <div class="stack share">
      <div class="row">
        <button class={labelSuffix ? 'secondary' : ''} aria-label={labelSuffix ? `Copy link${suffix}` : undefined} onClick={() => void copy()}>
          Copy
        </button>
        {canShare && (
          <button
            class="secondary"
            aria-label={labelSuffix ? `Share link${suffix}` : undefined}
            onClick={() => navigator.share({ title: name, text: `Join “${name}” on linkcall`, url }).catch(() => {})}
          >
            Share…
          </button>
        )}
        {!qrOpen && (
          <button class="secondary" aria-expanded={showQr} aria-label={`QR code${suffix}`} onClick={() => setShowQr(!showQr)}>
            QR code
          </button>
        )}
        <span role="status" class="ok-text">{copied ? 'Copied' : ''}</span>
      </div>
      {problem && <p role="alert" class="error">{problem}</p>}
      {showQr && (
        <figure class="qr-figure">
          <QrCode text={url} />
          <figcaption class="muted small">Scan with a phone's camera to join from it.</figcaption>
        </figure>
      )}
    </div>
  );
}
