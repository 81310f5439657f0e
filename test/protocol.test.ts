import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { closeCodeFor, ERRORS, type ErrorCode } from '../src/protocol/errors.js';
import { CLIENT_MESSAGE_TYPES, serverMessage } from '../src/protocol/messages.js';
import { linkNameOrBlank, parseDisplayName, parseLinkName } from '../src/protocol/names.js';

const doc = readFileSync(new URL('../docs/PROTOCOL.md', import.meta.url), 'utf8');

describe('protocol definitions', () => {
  it('documents every error code with its status, close code and sentence, and nothing else', () => {
    const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (\d+) \| (\d+) \| (.+) \|$/gm)];
    const documented = new Map(rows.map((r) => [r[1]!, { status: Number(r[2]), close: Number(r[3]), message: r[4]! }]));
    assert.deepEqual([...documented.keys()].sort(), Object.keys(ERRORS).sort());
    for (const [code, def] of Object.entries(ERRORS)) {
      const row = documented.get(code)!;
      assert.equal(row.status, def.status, code);
      assert.equal(row.close, closeCodeFor(code as ErrorCode), code);
      assert.equal(row.message, def.message, code);
    }
  });

  it('documents every client and server message type', () => {
    const serverTypes = serverMessage.options.map((o) => o.shape.type.value);
    for (const type of [...CLIENT_MESSAGE_TYPES, ...serverTypes]) assert.ok(doc.includes(`\`${type}\``), type);
  });

  it('trims names and refuses empty, long and control-character names', () => {
    assert.equal(parseDisplayName('  Ana  '), 'Ana');
    assert.equal(parseDisplayName('<b>Ana</b>'), '<b>Ana</b>');
    assert.equal(parseDisplayName('x'.repeat(64)), 'x'.repeat(64));
    for (const bad of ['', ' ', 'x'.repeat(65), 'a\u0007b', 'a\u202eb', 42, null]) assert.equal(parseDisplayName(bad), undefined);
  });

  /** Every character that can disguise a name on someone else's screen, and a few controls. */
  const DISGUISING = ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u0000', '\u0007', '\u001b', '\u007f', '\u0085', '\u2028', '\u2029', '\n', '\t'];

  it('refuses bidi overrides, bidi isolates and control characters in display names and link names', () => {
    for (const c of DISGUISING) {
      const label = `U+${c.codePointAt(0)!.toString(16).padStart(4, '0')}`;
      assert.equal(parseDisplayName(`Ana${c}lia`), undefined, `display name with ${label}`);
      assert.equal(parseLinkName(`Team${c}call`), undefined, `link name with ${label}`);
      assert.equal(linkNameOrBlank.safeParse(`Team${c}call`).success, false, `new link's name with ${label}`);
    }
  });

  it('keeps right-to-left names, emoji and markup as they are (only trimmed)', () => {
    for (const name of ['سارة', 'דנה', 'Zoë 🎉', '<i>Ana</i> & co']) {
      assert.equal(parseDisplayName(` ${name} `), name);
      assert.equal(parseLinkName(` ${name} `), name);
    }
    assert.equal(parseLinkName('x'.repeat(80)), 'x'.repeat(80));
    assert.equal(parseLinkName('x'.repeat(81)), undefined);
    assert.equal(parseLinkName('   '), undefined);
    assert.equal(linkNameOrBlank.parse('   '), '', 'a blank name for a new link means the default name');
  });
});
