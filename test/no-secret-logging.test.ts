// Never log keys, secrets, names or frame bytes, on either side (DESIGN.md "Keys (E2EE)",
// docs/SECURITY.md). A source check over src/**: every logging call (console.*, *.log.*,
// *.logger.*, the media layer's warn(ctx, …)) is found in the code — comments and the inside of
// string literals are not code — and its arguments may not mention secrets, keys, names, cards,
// grants, SDP, frames, payloads or request bodies. The server's logger must not be handed
// requests (request logging stays off, no custom serializers). bench/ and test/ are not checked.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');

/** Words (whole identifier parts, camelCase and snake_case split) a logging call may not mention. */
const FORBIDDEN_WORDS = new Set([
  'secret', 'secrets', 'key', 'keys', 'keypair', 'name', 'names', 'username', 'card', 'cards',
  'grant', 'grants', 'sdp', 'frame', 'frames', 'payload', 'payloads', 'body', 'password',
  'cookie', 'cookies', 'token', 'plaintext', 'fragment',
]);
/** Identifiers (not words in message text) that would hand a whole request to the logger. */
const FORBIDDEN_IDENTIFIERS = new Set(['req', 'request', 'raw', 'headers']);

/**
 * Two views of a source text with every position kept: `code` has comments and the contents
 * of string literals blanked (template-literal `${…}` expressions stay code); `text` has only
 * comments blanked. Regex literals are rare in src/ and contain no quotes; they are treated as code.
 */
export function views(source: string): { code: string; text: string } {
  const code = source.split('');
  const text = source.split('');
  const blank = (arr: string[], i: number) => {
    if (arr[i] !== '\n') arr[i] = ' ';
  };
  // Stack of open template literals: each entry is the brace depth inside its current ${…}.
  const templates: number[] = [];
  let i = 0;
  const n = source.length;
  const inTemplateText = () => templates.length > 0 && templates[templates.length - 1] === -1;
  while (i < n) {
    const c = source[i]!;
    if (inTemplateText()) {
      if (c === '\\') {
        blank(code, i);
        blank(code, i + 1);
        i += 2;
      } else if (c === '`') {
        templates.pop();
        i++;
      } else if (c === '$' && source[i + 1] === '{') {
        templates[templates.length - 1] = 0;
        i += 2;
      } else {
        blank(code, i);
        i++;
      }
      continue;
    }
    if (c === '/' && source[i + 1] === '/') {
      while (i < n && source[i] !== '\n') blank(code, i), blank(text, i), i++;
      continue;
    }
    if (c === '/' && source[i + 1] === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      for (; i < stop; i++) blank(code, i), blank(text, i);
      continue;
    }
    if (c === "'" || c === '"') {
      i++;
      while (i < n && source[i] !== c && source[i] !== '\n') {
        if (source[i] === '\\') blank(code, i++);
        blank(code, i++);
      }
      i++;
      continue;
    }
    if (c === '`') {
      templates.push(-1);
      i++;
      continue;
    }
    if (templates.length > 0) {
      if (c === '{') templates[templates.length - 1]!++;
      else if (c === '}') {
        if (templates[templates.length - 1] === 0) templates[templates.length - 1] = -1;
        else templates[templates.length - 1]!--;
      }
    }
    i++;
  }
  return { code: code.join(''), text: text.join('') };
}

/** Logging calls: console.x(, <anything>.log.x(, <anything>.logger?.x(, bare log.x(, and the media warn(ctx, …). */
const CALL = /(?<![\w$])(?:console|log|logger)\s*\??\.\s*[A-Za-z_$][\w$]*\s*\(|(?<![\w$.#])warn\s*\(/g;

function closingParen(code: string, open: number): number {
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    const c = code[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return code.length;
}

function words(text: string): string[] {
  return text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w.toLowerCase());
}

/** An error's class name (`err.name`, `(err as Error).name`), also as `name: …`, is not a person's name. */
const ERROR_NAME = /(?:\bname\s*:\s*)?(?:\(\s*[\w$]+\s+as\s+Error\s*\)|\berr(?:or)?\b)\s*\??\.\s*name\b/g;

export interface Finding {
  line: number;
  call: string;
  mentions: string[];
}

/** Every logging call in `source` whose arguments mention something that must never be logged. */
export function findSecretLogging(source: string): Finding[] {
  const { code, text } = views(source);
  const findings: Finding[] = [];
  // console used any other way than console.x(…) (console['log'], const { log } = console) cannot be checked.
  for (const m of code.matchAll(/(?<![\w$.])console\b(?!\s*\.\s*[A-Za-z_$][\w$]*\s*\()/g)) {
    findings.push({ line: lineOf(source, m.index), call: 'console', mentions: ['console used indirectly'] });
  }
  for (const m of code.matchAll(CALL)) {
    const before = code.slice(Math.max(0, m.index - 9), m.index);
    if (/function\s*$/.test(before)) continue; // the definition of warn()
    const open = m.index + m[0].length - 1;
    const close = closingParen(code, open);
    const argsCode = code.slice(open + 1, close).replace(ERROR_NAME, ' ');
    const argsText = text.slice(open + 1, close).replace(ERROR_NAME, ' ');
    const mentions = new Set<string>();
    for (const w of words(argsText)) if (FORBIDDEN_WORDS.has(w)) mentions.add(w);
    // Identifiers only: the message text may well say "request failed".
    for (const id of argsCode.match(/[A-Za-z_$][\w$]*/g) ?? []) {
      if (FORBIDDEN_IDENTIFIERS.has(id)) mentions.add(id);
    }
    if (mentions.size > 0) {
      findings.push({ line: lineOf(source, m.index), call: source.slice(m.index, close + 1).replace(/\s+/g, ' '), mentions: [...mentions] });
    }
  }
  return findings;
}

function lineOf(source: string, index: number): number {
  return source.slice(0, index).split('\n').length;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return /\.(?:ts|tsx|js|mjs)$/.test(e.name) ? [path] : [];
  });
}

describe('no secrets, names, keys or frames in logs', () => {
  it('the checker catches what it should and lets through what it should', () => {
    const caught = [
      'console.log(secret)',
      'console.log("link", link.secret)',
      'logger.info({ callKey })',
      'this.logger?.warn(`rotated ${rawKey}`)',
      'req.log.info(req.body)',
      'req.log.info({ linkKeys: keys })',
      'this.ctx.log.error({ who: participant.displayName }, "joined")',
      'ctx.log.warn({ sdp: message.sdp }, "bad offer")',
      'console.debug("frame bytes", data)',
      'console.error(card)',
      'log.debug(grant)',
      'http.log.info(`${hostName} arrived`)',
      "warn(this.#ctx, `media: ${payload.length}`)",
      'console.log(\n  "multi-line",\n  sendKey,\n)',
      "const { log } = console; log(secret);",
      'req.log.info(req)',
      'console.log(username)',
    ];
    for (const sample of caught) {
      assert.ok(findSecretLogging(sample).length > 0, `not caught: ${sample}`);
    }
    const allowed = [
      "req.log.error({ err: { name: (err as Error).name } }, 'request failed')",
      "this.ctx.log.error({ err: (err as Error)?.name, type: parsed.data.type }, 'signaling handler failed')",
      "http.log.info(`linkcall is ready at ${config.publicUrl ?? `http://localhost:${config.port}`}`)",
      "warn(this.#ctx, `media: subscriber negotiation failed: ${err instanceof Error ? err.message : 'unknown'}`)",
      '// console.log(secret)',
      '/* logger.info({ callKey }) */',
      "const s = 'console.log(secret)';",
      'const v = Math.log(secretCount);',
      'export function warn(ctx: MediaContext, msg: string): void {}',
      'console.log("ready")',
    ];
    for (const sample of allowed) {
      assert.deepEqual(findSecretLogging(sample), [], `wrongly caught: ${sample}`);
    }
  });

  it('src/** logs no secrets, keys, names, cards, grants, SDP, frames, payloads or bodies', () => {
    const files = sourceFiles(SRC);
    assert.ok(files.length > 30, `found only ${files.length} source files`);
    const problems: string[] = [];
    let calls = 0;
    for (const file of files) {
      const source = readFileSync(file, 'utf8');
      calls += [...views(source).code.matchAll(CALL)].length;
      for (const f of findSecretLogging(source)) {
        problems.push(`${relative(ROOT, file)}:${f.line}: ${f.call} — mentions ${f.mentions.join(', ')}`);
      }
    }
    assert.ok(calls >= 3, `the checker found only ${calls} logging calls in src/: is it still looking?`);
    assert.deepEqual(problems, []);
  });

  it("the server's logger is never given requests or their bodies", () => {
    const app = readFileSync(join(SRC, 'server/app.ts'), 'utf8');
    assert.match(views(app).code, /disableRequestLogging:\s*true/, 'request logging must stay off');
    for (const file of sourceFiles(join(SRC, 'server'))) {
      const { code } = views(readFileSync(file, 'utf8'));
      const where = relative(ROOT, file);
      assert.doesNotMatch(code, /\bserializers\s*:/, `${where}: custom log serializers could log requests`);
      // Fastify's per-request logger with a body attached, or a child logger carrying one.
      assert.doesNotMatch(code, /\.log\s*\.\s*child\s*\(/, `${where}: child loggers could carry request data`);
    }
  });
});
