// `npm start`: build the browser app when it is missing or older than its sources, then run the server.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { register } from 'tsx/esm/api';

const root = new URL('..', import.meta.url).pathname;
const built = join(root, 'dist/public/index.html');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const sources = ['src/ui', 'src/client', 'src/protocol', 'src/e2ee'].map((d) => join(root, d)).filter(existsSync);
const stale = !existsSync(built) || Math.max(...sources.map(newestSource)) > statSync(built).mtimeMs;
if (stale || process.argv.includes('--build')) {
  console.log('Building the browser app…');
  execFileSync(process.execPath, [join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], { cwd: root, stdio: 'inherit' });
}
if (process.argv.includes('--build-only')) process.exit(0);

register();
await import('../src/server/main.ts');
