/**
 * The folder rules of docs/ARCHITECTURE.md, checked on every source file: a forbidden import (or,
 * in client/, a use of the DOM) fails the suite with the file, the line and the rule it breaks.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '..');

interface Rule {
  folder: string;
  /** Project folders (or files) these files may import from; anything else in src/ is forbidden. */
  only?: string[];
  /** Project folders (or files) these files must not import from. */
  never?: string[];
  /** npm packages allowed; undefined = any. */
  packages?: string[];
  why: string;
}

const RULES: Rule[] = [
  { folder: 'src/protocol/', only: ['src/protocol/'], packages: ['zod'], why: 'protocol/ is imported by both sides and depends on nothing of either' },
  { folder: 'src/server/rooms/', only: ['src/server/rooms/', 'src/protocol/'], packages: [], why: 'rooms own the rules and know nothing of sockets, media engines or storage' },
  { folder: 'src/client/', never: ['src/ui/', 'src/server/', 'src/bot/'], why: 'client/ drives browser pages and Node bots alike' },
  { folder: 'src/e2ee/', never: ['src/ui/', 'src/server/', 'src/bot/'], why: 'the key code and the frame worker run without the UI' },
  { folder: 'src/server/media/', never: ['src/server/http/', 'src/server/signaling/', 'src/server/rooms/', 'src/server/sfu/', 'src/server/cluster/', 'src/server/store/'], why: 'media engine objects and pure media logic know nothing above them' },
  { folder: 'src/server/store/', never: ['src/server/rooms/', 'src/server/http/', 'src/server/signaling/', 'src/server/sfu/', 'src/server/media/'], why: 'the store keeps accounts and links, never calls' },
  { folder: 'src/server/signaling/', never: ['src/server/http/', 'src/server/media/', 'src/server/sfu/'], why: 'signaling reaches rooms through their interface, never HTTP routes or the media engine' },
  { folder: 'src/server/http/', never: ['src/server/media/', 'src/server/signaling/'], why: 'routes read counters through the Sfu interface and never speak WebSocket' },
  { folder: 'src/server/cluster/', never: ['src/server/media/', 'src/server/http/'], why: 'the cluster routes people and is fed room events' },
];

/** Browser globals client/ must not touch: it runs in Node bots too. */
const DOM = /\b(document|window|navigator|localStorage|sessionStorage|HTMLElement|HTMLVideoElement|RTCPeerConnection|MediaStream)\b/;

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}${e.name}`;
    if (e.isDirectory()) return sources(`${path}/`);
    return /\.tsx?$/.test(e.name) ? [path] : [];
  });
}

/** Source without comments and string contents other than import specifiers (good enough for the DOM check). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1').replace(/`(?:\\.|[^`\\])*`|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"/g, "''");
}

interface Import {
  line: number;
  spec: string;
}

function imports(text: string): Import[] {
  const found: Import[] = [];
  const lines = text.split('\n');
  for (const [i, l] of lines.entries()) {
    for (const m of l.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)) found.push({ line: i + 1, spec: m[1]! });
    for (const m of l.matchAll(/new URL\(\s*['"](\.[^'"]+)['"]\s*,\s*import\.meta\.url/g)) found.push({ line: i + 1, spec: m[1]! });
  }
  return found;
}

/** The project path an import points at ('src/…'), or the package name. */
function target(file: string, spec: string): { path?: string; pkg?: string } {
  if (spec.startsWith('.')) return { path: relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts') };
  if (spec.startsWith('node:')) return {};
  const parts = spec.split('/');
  return { pkg: spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0] };
}

export function violations(): string[] {
  const out: string[] = [];
  for (const rule of RULES) {
    for (const file of sources(rule.folder)) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const { line, spec } of imports(text)) {
        const { path, pkg } = target(file, spec);
        const where = `${file}:${line} imports ${spec}`;
        if (path) {
          if (rule.only && !rule.only.some((f) => path.startsWith(f))) out.push(`${where}: ${rule.folder} may import only ${rule.only.join(', ')} (${rule.why})`);
          const bad = rule.never?.find((f) => path.startsWith(f));
          if (bad) out.push(`${where}: ${rule.folder} must not import ${bad} (${rule.why})`);
        } else if (pkg && rule.packages && !rule.packages.includes(pkg)) {
          out.push(`${where}: ${rule.folder} may use only ${rule.packages.length ? rule.packages.join(', ') : 'no npm packages'} (${rule.why})`);
        }
      }
      if (rule.folder === 'src/client/') {
        for (const [i, l] of code(text).split('\n').entries()) {
          const m = DOM.exec(l);
          if (m) out.push(`${file}:${i + 1} uses ${m[1]}: client/ has no DOM (${rule.why})`);
        }
      }
    }
  }
  return out;
}

describe('the folder rules of docs/ARCHITECTURE.md', () => {
  test('no source file imports across a forbidden line, and client/ never touches the DOM', () => {
    assert.deepEqual(violations(), []);
  });

  test('the rule check itself catches a forbidden import', () => {
    assert.deepEqual(imports(`import { Router } from '../media/router.js';`), [{ line: 1, spec: '../media/router.js' }]);
    assert.equal(target('src/server/rooms/room.ts', '../media/router.js').path, 'src/server/media/router.ts');
    assert.match(code(`const a = 1; // document.body\nconst s = 'window';\nnavigator.onLine;`), /^const a = 1; \nconst s = '';\nnavigator\.onLine;$/);
  });

  test('docs/ARCHITECTURE.md describes every source folder, and names each rule', () => {
    const doc = readFileSync(join(ROOT, 'docs/ARCHITECTURE.md'), 'utf8');
    const folders = new Set<string>();
    const walk = (dir: string) => {
      for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
        if (!e.isDirectory()) continue;
        folders.add(`${dir}${e.name}/`);
        walk(`${dir}${e.name}/`);
      }
    };
    walk('src/');
    for (const f of folders) assert.ok(doc.includes(`\`${f.replace(/^src\//, '')}\``), `docs/ARCHITECTURE.md says nothing of ${f}`);
    for (const r of RULES) assert.ok(doc.toLowerCase().includes(r.why.toLowerCase()), `docs/ARCHITECTURE.md does not give the rule for ${r.folder}: "${r.why}"`);
  });
});
