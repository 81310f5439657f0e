/**
 * The one place media counters are added up: calls (or worker processes) come and go, so what
 * the ended ones counted is kept, and the live ones are read when the totals are asked for.
 */
import { addCounters, newCounters, type MediaCounters } from '../media/counters.js';

type Counts = Readonly<Partial<Record<keyof MediaCounters, number>>>;

export class CounterTotals<Source> {
  private readonly ended: MediaCounters = newCounters();
  private readonly live = new Set<Source>();

  /** `read` gives a source's counters so far (a snapshot). */
  constructor(private readonly read: (source: Source) => Counts) {}

  /** Count `source` while it lives. */
  add(source: Source): void {
    this.live.add(source);
  }

  /** `source` ended: what it counted stays in the totals. */
  retire(source: Source): void {
    if (this.live.delete(source)) addCounters(this.ended, this.read(source));
  }

  sum(): MediaCounters {
    const total = { ...this.ended };
    for (const source of this.live) addCounters(total, this.read(source));
    return total;
  }
}
