/**
 * Everyone's received tracks, sorted into what the page shows: per participant
 * a camera stream (microphone + camera) and, while they share, a screen stream.
 *
 * Each participant's tracks arrive in one browser stream (id = participant id).
 * A publisher always sends microphone, camera, then the screen, in that m-line
 * order (CallConnection.prepareOffer), and each publish (a screen share starting
 * or stopping) adds a new group of tracks after the old one, whose tracks end.
 * So: the newest group starts at the live audio track with the highest order;
 * its first video is the camera and its second the screen.
 */
export interface ParticipantMedia {
  /** Microphone and camera together: stable object, tracks swapped in place. */
  camera: MediaStream;
  /** The shared screen, while there is one. */
  screen?: MediaStream;
  audio?: MediaStreamTrack;
}

export class RemoteMedia {
  private readonly cameras = new Map<string, MediaStream>();
  private readonly screens = new Map<string, MediaStream>();

  constructor(private readonly order: (track: MediaStreamTrack) => number) {}

  update(streams: ReadonlyMap<string, MediaStream>): Map<string, ParticipantMedia> {
    const out = new Map<string, ParticipantMedia>();
    for (const [id, stream] of streams) {
      const live = stream.getTracks().filter((t) => t.readyState === 'live');
      const sorted = live.map((t) => ({ t, o: this.order(t) })).sort((a, b) => a.o - b.o);
      const audios = sorted.filter((x) => x.t.kind === 'audio');
      const newest = audios[audios.length - 1];
      const from = newest?.o ?? -Infinity;
      const videos = sorted.filter((x) => x.t.kind === 'video' && x.o > from).map((x) => x.t);
      // Before the first audio track has arrived, take what is there.
      if (!newest) videos.push(...sorted.filter((x) => x.t.kind === 'video').map((x) => x.t));
      const audio = newest?.t;
      const camera = this.stable(this.cameras, id, [audio, videos[0]]);
      const screen = videos[1] ? this.stable(this.screens, id, [videos[1]]) : undefined;
      if (!screen) this.screens.delete(id);
      out.set(id, { camera, screen, audio });
    }
    for (const id of this.cameras.keys()) if (!streams.has(id)) this.cameras.delete(id);
    return out;
  }

  /** The same MediaStream object each time (a <video> keeps playing), holding exactly these tracks. */
  private stable(cache: Map<string, MediaStream>, id: string, tracks: (MediaStreamTrack | undefined)[]): MediaStream {
    let stream = cache.get(id);
    if (!stream) cache.set(id, (stream = new MediaStream()));
    const want = tracks.filter((t): t is MediaStreamTrack => !!t);
    for (const t of stream.getTracks()) if (!want.includes(t)) stream.removeTrack(t);
    for (const t of want) if (!stream.getTrackById(t.id)) stream.addTrack(t);
    return stream;
  }
}
