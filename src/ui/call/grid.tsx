/**
 * The call grid: tiles as large as the space allows for everyone, pages when
 * they would get too small, and a stage for a shared screen or a pinned person
 * (the sharer's camera small in its corner).
 */
import { Component } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Quality } from './quality.js';
import type { TileSizeReport } from './viewport.js';
// `t` names a tile here, so the catalog's lookup goes by `tr`.
import { t as tr, tx } from '../i18n/locale.js';

export interface TileModel {
  /** Participant id (the self tile uses its own id too). */
  id: string;
  name: string;
  self: boolean;
  audio: boolean;
  video: boolean;
  reconnecting?: boolean;
  stream?: MediaStream;
  screen?: MediaStream;
  speaking: boolean;
  quality?: Quality;
  /** A raised hand, and a reaction sent in the last few seconds. */
  hand?: boolean;
  reaction?: string;
  coHost?: boolean;
  /** Over this page's video budget (budget.ts): the name and initial show, the SFU sends nothing. */
  paused?: boolean;
  onRemove?: () => void;
  /** For the host and co-hosts: mute this participant (or, when muted, ask them to unmute). */
  onMute?: () => void;
  /** For the host: make this participant a co-host, or not. */
  onCoHost?: () => void;
}

interface GridProps {
  tiles: TileModel[];
  pinned?: string;
  onPin: (id: string | undefined) => void;
  /** Each drawn video's size, for the SFU's choice of layer (see viewport.ts). */
  onTileSize?: TileSizeReport;
}

/** Smallest useful tile width; below it the grid pages. */
const MIN_TILE_WIDTH = 150;
const ASPECT = 16 / 9;
const GAP = 8;

export interface Layout {
  cols: number;
  rows: number;
  width: number;
  perPage: number;
}

/** The column count that makes tiles largest for n tiles in w × h, paging when even that is too small. */
export function fitGrid(n: number, w: number, h: number): Layout {
  let best: Layout = { cols: 1, rows: 1, width: 0, perPage: 1 };
  for (let cols = 1; cols <= Math.max(1, n); cols++) {
    const rows = Math.ceil(n / cols);
    const width = Math.min((w - GAP * (cols - 1)) / cols, ((h - GAP * (rows - 1)) / rows) * ASPECT);
    if (width > best.width) best = { cols, rows, width, perPage: n };
  }
  if (best.width >= MIN_TILE_WIDTH || n <= 1) return { ...best, width: Math.max(best.width, Math.min(w, MIN_TILE_WIDTH)) };
  // Too small: as many minimum-size tiles as fit on one page.
  const cols = Math.max(1, Math.floor((w + GAP) / (MIN_TILE_WIDTH + GAP)));
  const rows = Math.max(1, Math.floor((h + GAP) / (MIN_TILE_WIDTH / ASPECT + GAP)));
  const width = Math.min((w - GAP * (cols - 1)) / cols, ((h - GAP * (rows - 1)) / rows) * ASPECT);
  return { cols, rows, width, perPage: cols * rows };
}

function useSize(ref: { current: HTMLElement | null }): { w: number; h: number } {
  const [size, setSize] = useState({ w: 0, h: 0 });
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    // Measured now, before the first paint: waiting for the observer's first report would lay
    // the call out twice while it opens.
    const first = el.getBoundingClientRect();
    setSize({ w: first.width, h: first.height });
    const observer = new ResizeObserver(([entry]) => {
      const r = entry!.contentRect;
      setSize((s) => (Math.abs(s.w - r.width) < 1 && Math.abs(s.h - r.height) < 1 ? s : { w: r.width, h: r.height }));
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return size;
}

/**
 * The grid, drawn again only when a tile changes: the call view redraws for every knock and key
 * change, and diffing every tile each time kept a busy host's page from showing a knock quickly.
 */
export class MemoCallGrid extends Component<GridProps> {
  override shouldComponentUpdate(next: GridProps): boolean {
    const prev = this.props;
    return prev.pinned !== next.pinned || prev.onPin !== next.onPin || prev.onTileSize !== next.onTileSize || !sameTiles(prev.tiles, next.tiles);
  }
  override render() {
    return <CallGrid {...this.props} />;
  }
}

function sameTiles(a: readonly TileModel[], b: readonly TileModel[]): boolean {
  return a.length === b.length && a.every((t, i) => sameTile(t, b[i]!));
}

function sameTile(t: TileModel, u: TileModel): boolean {
  return (
    t.id === u.id && t.name === u.name && t.self === u.self && t.audio === u.audio && t.video === u.video &&
    t.reconnecting === u.reconnecting && t.stream === u.stream && t.screen === u.screen && t.speaking === u.speaking &&
    t.quality === u.quality && t.hand === u.hand && t.reaction === u.reaction && t.coHost === u.coHost && t.paused === u.paused && !t.onCoHost === !u.onCoHost && !t.onMute === !u.onMute &&
    // A new closure each time, doing the same (removing this tile's participant): only whether there is one counts.
    !t.onRemove === !u.onRemove
  );
}

type TileProps = { tile: TileModel; pinned: boolean; onPin: (id: string | undefined) => void; onTileSize?: GridProps['onTileSize'] };

/**
 * One tile, drawn again only when it changes: in a call of 33, a new speaker or one person's
 * connection quality redrew all 33 (captions, buttons, translations) after a statistics poll, in
 * the page's longest tasks on a busy 2-core machine (bench/room).
 */
class MemoTile extends Component<TileProps> {
  override shouldComponentUpdate(next: TileProps): boolean {
    const prev = this.props;
    return prev.pinned !== next.pinned || prev.onPin !== next.onPin || prev.onTileSize !== next.onTileSize || !sameTile(prev.tile, next.tile);
  }
  override render() {
    return <Tile {...this.props} />;
  }
}

export function CallGrid({ tiles, pinned, onPin, onTileSize }: GridProps) {
  const area = useRef<HTMLDivElement>(null);
  const { w, h } = useSize(area);
  const [page, setPage] = useState(0);
  const sharer = tiles.find((t) => t.screen);
  const stage = sharer ?? tiles.find((t) => t.id === pinned);
  const rest = stage ? tiles.filter((t) => t !== stage) : tiles;

  const layout = fitGrid(rest.length, w || 320, (stage ? Math.min(h * 0.3, 200) : h) || 240);
  const pages = Math.max(1, Math.ceil(rest.length / layout.perPage));
  const current = Math.min(page, pages - 1);
  const shown = stage ? rest : rest.slice(current * layout.perPage, (current + 1) * layout.perPage);
  // Tiles on other pages are not drawn: the SFU sends them nothing (see viewport.ts).
  const offPage = rest.filter((t) => !t.self && !shown.includes(t)).map((t) => t.id).join();
  useEffect(() => {
    if (!onTileSize || !offPage) return;
    for (const id of offPage.split(',')) onTileSize(`camera:${id}`, id, 0, 0);
  }, [offPage, onTileSize]);

  return (
    <div class={`call-area${stage ? ' with-stage' : ''}`} ref={area}>
      {stage && (
        <div class="stage">
          {stage.screen ? (
            <>
              <ScreenTile tile={stage} onTileSize={onTileSize} />
              <div class="pip">
                <Tile tile={stage} pinned={pinned === stage.id} onPin={onPin} onTileSize={onTileSize} />
              </div>
            </>
          ) : (
            <Tile tile={stage} pinned={pinned === stage.id} onPin={onPin} onTileSize={onTileSize} />
          )}
        </div>
      )}
      <section
        class={stage ? 'strip' : 'grid'}
        aria-label={tr('grid.participants')}
        style={stage ? undefined : { '--cols': String(layout.cols), '--tile-w': `${Math.floor(layout.width)}px` }}
      >
        {shown.map((t) => (
          <MemoTile key={t.id} tile={t} pinned={pinned === t.id} onPin={onPin} onTileSize={onTileSize} />
        ))}
      </section>
      {!stage && pages > 1 && (
        <nav class="row pager" aria-label={tr('grid.pages')}>
          <button class="secondary small" disabled={current === 0} onClick={() => setPage(current - 1)}>{tr('grid.previous')}</button>
          <span role="status">{tr('grid.page', { page: current + 1, pages })}</span>
          <button class="secondary small" disabled={current >= pages - 1} onClick={() => setPage(current + 1)}>{tr('grid.next')}</button>
        </nav>
      )}
    </div>
  );
}

/** Reports a drawn video's size, and 0×0 while it is not drawn (paused, paged away, unpinned). */
function useTileSize(ref: { current: HTMLElement | null }, key: string, id: string, report?: TileSizeReport, drawn = true) {
  useEffect(() => {
    const el = ref.current;
    if (!report) return;
    if (!el || !drawn) {
      report(key, id, 0, 0);
      return;
    }
    const observer = new ResizeObserver(([entry]) => report(key, id, entry!.contentRect.width, entry!.contentRect.height));
    observer.observe(el);
    return () => {
      observer.disconnect();
      report(key, id, 0, 0);
    };
  }, [key, id, report, drawn]);
}

function Tile({ tile: t, pinned, onPin, onTileSize }: TileProps) {
  const video = useRef<HTMLVideoElement>(null);
  const stream = t.paused ? undefined : t.stream;
  // Before the browser paints (not after, as useEffect would): the player starts a frame sooner.
  useLayoutEffect(() => {
    if (video.current && video.current.srcObject !== (stream ?? null)) video.current.srcObject = stream ?? null;
  }, [stream]);
  // A paused tile reports no size: the SFU stops forwarding its video.
  useTileSize(video, `camera:${t.id}`, t.id, t.self ? undefined : onTileSize, !t.paused);
  const label = t.self ? tr('grid.you', { name: t.name }) : t.name;
  return (
    <figure class={`tile${t.speaking ? ' speaking' : ''}`} data-participant={t.id} aria-label={label}>
      {/* Sound plays from the call's audio elements, so paging or pinning never silences anyone. */}
      <video
        ref={video}
        autoplay
        playsInline
        muted
        class={t.self ? 'mirror' : ''}
        aria-label={t.self ? tr('grid.yourVideo') : tr('grid.videoOf', { name: t.name })}
      />
      {(!t.video || !t.stream || t.paused) && (
        <div class="camera-off" aria-hidden="true">
          <span class="avatar" translate={false}>{[...t.name][0]?.toUpperCase()}</span>
        </div>
      )}
      <figcaption class="tile-bar">
        <span class="tile-name">{t.self ? tx('grid.you', { name: <bdi translate={false}>{t.name}</bdi> }) : <bdi translate={false}>{t.name}</bdi>}</span>
        {t.coHost && <span class="small"> {tr('grid.coHost')}</span>}
        {t.speaking && <span class="sr-only">{tr('grid.speaking')}</span>}
        {!t.audio && <span class="muted-icon" aria-label={tr('grid.isMuted', { name: t.name })} role="img">{tr('grid.muted')}</span>}
        {!t.video && <span class="sr-only">{tr('grid.cameraIsOff')}</span>}
        {t.paused && <span class="sr-only">{tr('grid.videoPaused')}</span>}
        {t.hand && <span class="hand" role="img" aria-label={t.self ? tr('grid.yourHand') : tr('grid.theirHand', { name: t.name })}>✋</span>}
        {t.reaction && <span class="reaction" role="img" aria-label={t.self ? tr('grid.youReacted', { reaction: t.reaction }) : tr('grid.theyReacted', { name: t.name, reaction: t.reaction })}>{t.reaction}</span>}
        {t.quality && <QualityBars quality={t.quality} name={t.self ? undefined : t.name} />}
        {t.reconnecting ? (
          <span class="small" role="status">{tr('grid.reconnecting')}</span>
        ) : (
          !t.stream && !t.self && <span class="small">{tr('grid.connecting')}</span>
        )}
        <span class="tile-actions">
          <button class="icon small" aria-pressed={pinned} aria-label={pinned ? tr('grid.unpinNamed', { name: t.name }) : tr('grid.pinNamed', { name: t.name })} onClick={() => onPin(pinned ? undefined : t.id)}>
            {pinned ? tr('grid.unpin') : tr('grid.pin')}
          </button>
          {t.onMute && (
            <button class="secondary small" onClick={t.onMute}>
              {t.audio ? tr('grid.muteNamed', { name: t.name }) : tr('grid.askUnmute', { name: t.name })}
            </button>
          )}
          {t.onCoHost && (
            <button class="secondary small" aria-label={t.coHost ? tr('grid.removeCoHostNamed', { name: t.name }) : tr('grid.makeCoHostNamed', { name: t.name })} onClick={t.onCoHost}>
              {t.coHost ? tr('grid.removeCoHost') : tr('grid.makeCoHost')}
            </button>
          )}
          {t.onRemove && <button class="danger small" aria-label={tr('grid.removeNamed', { name: t.name })} onClick={t.onRemove}>{tr('grid.remove')}</button>}
        </span>
      </figcaption>
    </figure>
  );
}

function ScreenTile({ tile: t, onTileSize }: { tile: TileModel; onTileSize?: GridProps['onTileSize'] }) {
  const video = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (video.current && video.current.srcObject !== (t.screen ?? null)) video.current.srcObject = t.screen ?? null;
  }, [t.screen]);
  useTileSize(video, `screen:${t.id}`, t.id, t.self ? undefined : onTileSize);
  const label = t.self ? tr('grid.yourScreen') : tr('grid.screenOf', { name: t.name });
  return (
    <figure class="tile screen" aria-label={label}>
      <video ref={video} autoplay playsInline muted aria-label={label} />
      <figcaption class="tile-bar">
        <span class="tile-name">{label}</span>
      </figcaption>
    </figure>
  );
}

const QUALITY = { good: 'grid.good', fair: 'grid.fair', poor: 'grid.poor' } as const;

/** `name` absent: your own video. */
function QualityBars({ quality, name }: { quality: Quality; name?: string }) {
  const said = tr(QUALITY[quality]);
  return (
    <span
      class={`quality q-${quality}`}
      role="img"
      aria-label={name === undefined ? tr('grid.qualityMine', { quality: said }) : tr('grid.qualityOf', { name, quality: said })}
      title={tr('grid.connection', { quality: said })}
    >
      <i />
      <i />
      <i />
    </span>
  );
}
