/** The SFU of every call in this process (MEDIA_WORKERS unset or 0): one CallMedia, and so one Router, per call. */
import type { Router, RouterOptions } from '../media/router.js';
import { CallMedia } from './call-media.js';
import { CounterTotals } from './counter-totals.js';
import type { Sfu, SfuCounters } from './sfu.js';

export class InProcessSfu implements Sfu {
  private readonly totals = new CounterTotals<Router>((router) => router.stats());

  /** Where the SFU's sockets bind and what they announce (config.ts, mediaNetwork). */
  constructor(private readonly options: RouterOptions = {}) {}

  createRoomMedia(): CallMedia {
    const media = new CallMedia(this.options);
    const { router } = media;
    this.totals.add(router);
    router.once('close', () => this.totals.retire(router));
    return media;
  }

  async counters(): Promise<SfuCounters> {
    return { media: this.totals.sum() };
  }

  /** Each call's Router closes with its room; nothing else runs here. */
  async close(): Promise<void> {}
}
