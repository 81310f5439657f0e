/** The media worker processes (MEDIA_WORKERS) of a server process, found in /proc (Linux). */
import { readdirSync, readFileSync } from 'node:fs';

/** Children of `pid` running the media worker (other children, e.g. tsx's esbuild service, are left out). */
export function mediaWorkersOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('sfu/worker-process.ts')) found.push(Number(entry));
    } catch {
      // gone while we looked
    }
  }
  return found;
}
