import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { closeCodeFor, ERRORS, type ErrorCode } from '../src/protocol/errors.js';
import { CLIENT_MESSAGE_TYPES, parseDisplayName, serverMessage } from '../src/protocol/messages.js';

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
});
