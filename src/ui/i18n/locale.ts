/**
 * The app's words in the person's language: message catalogs (English built in, the others loaded
 * on demand as their own chunks), plurals, numbers, dates and lists through the browser's Intl.
 * Why not a library: docs/I18N.md.
 */
import type { ComponentChild } from 'preact';
import type { ErrorCode } from '../../protocol/errors.js';
import { en, type Catalog, type Message, type MessageKey } from './en.js';

export type { MessageKey } from './en.js';

/** Languages offered, each named in itself (the picker shows them so). */
export const LANGUAGES = [
  { code: 'en', name: 'English' },
  { code: 'es', name: 'Español' },
  { code: 'fr', name: 'Français' },
  { code: 'de', name: 'Deutsch' },
  { code: 'pt-BR', name: 'Português (Brasil)' },
  { code: 'ar', name: 'العربية' },
] as const;
export type Language = (typeof LANGUAGES)[number]['code'];
/** Every catalog string wrapped in ⟦…⟧, so a test can spot text that bypassed the catalogs. Only by `?lang=en-XA` or a test's stored setting. */
export const PSEUDO = 'en-XA';
type Active = Language | typeof PSEUDO;

const RTL = new Set<string>(['ar']);
const STORAGE_KEY = 'linkcall.language';

const loaders: Record<Exclude<Language, 'en'>, () => Promise<{ default: Catalog }>> = {
  es: () => import('./es.js'),
  fr: () => import('./fr.js'),
  de: () => import('./de.js'),
  'pt-BR': () => import('./pt-BR.js'),
  ar: () => import('./ar.js'),
};

let active: Active = 'en';
let catalog: Catalog = en;
const listeners = new Set<() => void>();

export function language(): Active {
  return active;
}

/** The closest offered language to the browser's preferences ("pt-PT" gets Brazilian Portuguese, "es-MX" Spanish). */
export function matchLanguage(wanted: readonly string[]): Language {
  for (const tag of wanted) {
    const exact = LANGUAGES.find((l) => l.code.toLowerCase() === tag.toLowerCase());
    if (exact) return exact.code;
    const base = tag.split('-')[0]!.toLowerCase();
    const same = LANGUAGES.find((l) => l.code.split('-')[0] === base);
    if (same) return same.code;
  }
  return 'en';
}

function stored(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage blocked: the browser's language it is
  }
}

/** The language to start in: the query's debug setting, else the person's choice, else the browser's. */
export function initialLanguage(): Active {
  const chosen = new URLSearchParams(location.search).get('lang') ?? stored();
  if (chosen === PSEUDO) return PSEUDO;
  if (chosen) return matchLanguage([chosen]);
  return matchLanguage(navigator.languages?.length ? navigator.languages : [navigator.language]);
}

function pseudo(): Catalog {
  const wrap = (s: string) => `⟦${s}⟧`;
  const out = {} as Record<MessageKey, Message>;
  for (const [key, m] of Object.entries(en) as [MessageKey, Message][]) {
    out[key] = typeof m === 'string' ? wrap(m) : (Object.fromEntries(Object.entries(m).map(([k, v]) => [k, wrap(v)])) as Message);
  }
  return out;
}

/** Switch language: loads its catalog, marks up <html lang dir>, redraws. */
export async function setLanguage(lang: Active): Promise<void> {
  catalog = lang === 'en' ? en : lang === PSEUDO ? pseudo() : (await loaders[lang]()).default;
  active = lang;
  formats.clear();
  document.documentElement.lang = lang;
  document.documentElement.dir = RTL.has(lang) ? 'rtl' : 'ltr';
  document.title = t('app.title');
  listeners.forEach((l) => l());
}

/** The person's choice from the picker, remembered in this browser. */
export async function chooseLanguage(lang: Language): Promise<void> {
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // not remembered; still switched
  }
  await setLanguage(lang);
}

export function onLanguageChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const formats = new Map<string, unknown>();
function cached<T>(key: string, make: () => T): T {
  if (!formats.has(key)) formats.set(key, make());
  return formats.get(key) as T;
}
const intlLocale = () => (active === PSEUDO ? 'en' : active);
export const plurals = () => cached('plural', () => new Intl.PluralRules(intlLocale()));
export const numbers = () => cached('number', () => new Intl.NumberFormat(intlLocale()));
export const relativeTime = () => cached('relative', () => new Intl.RelativeTimeFormat(intlLocale(), { numeric: 'auto' }));
export const dateTime = () => cached('dateTime', () => new Intl.DateTimeFormat(intlLocale(), { dateStyle: 'medium', timeStyle: 'short' }));
export const clockTime = () => cached('clock', () => new Intl.DateTimeFormat(intlLocale(), { hour: 'numeric', minute: '2-digit' }));
export const unit = (u: 'second' | 'minute' | 'hour') =>
  cached(`unit:${u}`, () => new Intl.NumberFormat(intlLocale(), { style: 'unit', unit: u, unitDisplay: 'short' }));

export type Params = Record<string, string | number>;

function pick(key: MessageKey, params?: Params): string {
  const m: Message = catalog[key] ?? en[key];
  if (typeof m === 'string') return m;
  const count = Number(params?.count ?? 0);
  return m[plurals().select(count)] ?? m.other;
}

function fill(value: string | number): string {
  return typeof value === 'number' ? numbers().format(value) : value;
}

/** A catalog sentence with its {placeholders} filled; numbers in the language's digits; plurals by `count`. */
export function t(key: MessageKey, params?: Params): string {
  const text = pick(key, params);
  return params ? text.replace(/\{(\w+)\}/g, (all, name: string) => (name in params ? fill(params[name]!) : all)) : text;
}

/** Like t, for placeholders that are elements (a name in <strong>, a button). */
export function tx(key: MessageKey, parts: Record<string, ComponentChild>): ComponentChild[] {
  return pick(key, parts as Params)
    .split(/(\{\w+\})/)
    .map((piece) => {
      const name = /^\{(\w+)\}$/.exec(piece)?.[1];
      if (name === undefined || !(name in parts)) return piece;
      const part = parts[name];
      return typeof part === 'number' ? numbers().format(part) : part;
    });
}

/** A sentence kept in state as its key, so it follows a change of language. */
export type Said = { key: MessageKey; params?: Params };
export const say = (key: MessageKey, params?: Params): Said => ({ key, params });
export const told = (s: Said) => t(s.key, s.params);

/** The sentence for a code from the server's error registry, in the person's language. */
export function errorText(code: string): string {
  const key = `error.${code}` as MessageKey;
  return key in en ? t(key) : t('error.internal');
}
export const errorSaid = (code: ErrorCode | string): Said => {
  const key = `error.${code}` as MessageKey;
  return { key: key in en ? key : 'error.internal' };
};
