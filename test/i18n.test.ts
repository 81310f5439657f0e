/**
 * Every catalog says everything English says, with the same placeholders, and every error code
 * the server can send has its sentence.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_CODES } from '../src/protocol/errors.js';
import { en, type Message } from '../src/ui/i18n/en.js';
import ar from '../src/ui/i18n/ar.js';
import de from '../src/ui/i18n/de.js';
import es from '../src/ui/i18n/es.js';
import fr from '../src/ui/i18n/fr.js';
import ptBR from '../src/ui/i18n/pt-BR.js';

const CATALOGS: Record<string, Record<string, Message>> = { es, fr, de, 'pt-BR': ptBR, ar };
const PLURAL_CATEGORIES = new Set(['zero', 'one', 'two', 'few', 'many', 'other']);

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!).sort();
const forms = (m: Message) => (typeof m === 'string' ? [m] : Object.values(m));

describe('message catalogs', () => {
  for (const [lang, catalog] of Object.entries(CATALOGS)) {
    it(`${lang} has exactly the English keys`, () => {
      const missing = Object.keys(en).filter((k) => !(k in catalog));
      const extra = Object.keys(catalog).filter((k) => !(k in en));
      assert.deepEqual({ missing, extra }, { missing: [], extra: [] });
    });

    it(`${lang} uses the same placeholders as English`, () => {
      const wrong: string[] = [];
      for (const [key, source] of Object.entries(en) as [string, Message][]) {
        const target = catalog[key];
        if (target === undefined) continue;
        const wanted = new Set(forms(source).flatMap(placeholders));
        if (typeof source === 'string') {
          if (typeof target !== 'string' || placeholders(target).join() !== placeholders(source).join()) wrong.push(key);
          continue;
        }
        // A plural form may leave the number out ("one", "two" in Arabic), never add another placeholder.
        if (typeof target === 'string' || !('other' in target)) wrong.push(key);
        else if (Object.keys(target).some((c) => !PLURAL_CATEGORIES.has(c))) wrong.push(key);
        else if (forms(target).some((f) => placeholders(f).some((p) => !wanted.has(p)))) wrong.push(key);
        else if (!placeholders(target.other).every((p) => wanted.has(p)) || placeholders(target.other).length !== wanted.size) wrong.push(key);
      }
      assert.deepEqual(wrong, []);
    });

    it(`${lang} has every plural category its language uses for 0 to 1000`, () => {
      // Counts here are people, days, messages: Spanish "many" (millions) may fall back to "other".
      const rules = new Intl.PluralRules(lang);
      const needed = [...new Set(Array.from({ length: 1001 }, (_, n) => rules.select(n)))];
      const short: string[] = [];
      for (const [key, m] of Object.entries(catalog)) {
        if (typeof m !== 'string' && needed.some((c) => !(c in m))) short.push(key);
      }
      assert.deepEqual(short, []);
    });
  }

  it('every error code in the registry has a sentence in the English catalog', () => {
    const missing = ERROR_CODES.filter((code) => !(`error.${code}` in en));
    assert.deepEqual(missing, []);
  });
});
