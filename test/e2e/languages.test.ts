/**
 * The app in the person's language, in Chromium: in the pseudo-locale every visible word on every
 * page comes from a catalog; the whole guest flow works in Spanish and in Arabic (right to left)
 * by role and accessible name; French, German and Brazilian Portuguese follow the browser and the picker; axe finds nothing serious in Arabic; at 360×740 Name and Continue
 * are on the first screen in English and Arabic; and no request leaves for another origin.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { seriousViolations } from '../support/axe.js';
import { newPerson, serverAndChromium } from '../support/browser.js';
import { guestKnocks, hostEnters, signUpAndCreateLink } from '../support/flow.js';

/** Text (and names, titles, placeholders) with letters outside ⟦…⟧ markers, leaving out what people typed. */
function unmarked(page: Page, typed: string[]): Promise<string[]> {
  // Passed as source text: the test runner's transform would add helpers the page does not have.
  return page.evaluate(`(${UNMARKED_IN_PAGE})(${JSON.stringify(typed)})`) as Promise<string[]>;
}

const UNMARKED_IN_PAGE = `function (typed) {
  function strip(s) {
    let before;
    do {
      before = s;
      s = s.replace(/⟦[^⟦⟧]*⟧/g, ' ');
    } while (s !== before);
    for (const t of typed) s = s.split(t).join(' ');
    return s;
  }
  const letters = /\\p{L}/u;
  const found = [];
  let text = '';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    // translate="no": names and link names as typed, device labels, languages named in themselves.
    text += n.parentElement && n.parentElement.closest('script, style, [translate="no"]') ? ' ' : n.data;
  }
  const left = strip(text).replace(/\\s+/g, ' ').trim();
  if (letters.test(left)) found.push('text: ' + left);
  for (const el of document.querySelectorAll('[aria-label], [title], [placeholder]')) {
    for (const attr of ['aria-label', 'title', 'placeholder']) {
      const v = el.getAttribute(attr);
      if (v && letters.test(strip(v))) found.push(attr + ': ' + v);
    }
  }
  if (letters.test(strip(document.title))) found.push('title: ' + document.title);
  return found;
}`;

/** Every request a page makes, to check they all go to linkcall itself. */
function foreignRequests(context: BrowserContext, origin: string): string[] {
  const foreign: string[] = [];
  context.on('request', (r) => {
    const url = new URL(r.url());
    if (url.protocol === 'data:' || url.protocol === 'blob:') return;
    if (url.origin !== origin) foreign.push(r.url());
  });
  return foreign;
}

const pseudo = (context: BrowserContext) => context.addInitScript(() => localStorage.setItem('linkcall.language', 'en-XA'));

describe('languages in Chromium', { timeout: 300_000 }, () => {
  const env = serverAndChromium();

  it('in the pseudo-locale no page shows a word that bypassed the catalogs', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const guest = await newPerson(env.browser, env.server.url);
    for (const p of [host, guest]) await pseudo(p.context);
    const typed = ['ps_host', 'Pseudo call', 'Pia'];
    const found: string[] = [];
    const check = async (page: Page, what: string) => {
      for (const f of await unmarked(page, typed)) found.push(`${what} — ${f}`);
    };

    await host.page.goto('/');
    await host.page.getByRole('button', { name: 'Sign in' }).waitFor();
    assert.equal(await host.page.getAttribute('html', 'lang'), 'en-XA');
    await check(host.page, 'home');
    const link = await signUpAndCreateLink(host.page, 'ps_host', 'Pseudo call');
    await check(host.page, 'link list');

    await guest.page.goto(link);
    await guest.page.getByRole('textbox', { name: 'Name' }).waitFor();
    await guest.page.locator('meter').waitFor();
    await guest.page.getByRole('button', { name: 'Devices' }).click();
    await check(guest.page, 'join');

    await hostEnters(host.page, link);
    await guestKnocks(guest.page, link, 'Pia');
    await guest.page.getByText('let you in').waitFor();
    await check(guest.page, 'waiting');
    await host.page.getByRole('button', { name: 'Approve Pia' }).waitFor();
    await check(host.page, 'call with a knock');
    await host.page.getByRole('button', { name: 'Approve Pia' }).click();
    await guest.page.getByRole('button', { name: 'Leave' }).waitFor({ timeout: 30_000 });
    await guest.page.getByRole('button', { name: 'Chat', exact: false }).first().click();
    await guest.page.getByRole('button', { name: 'Raise hand' }).click();
    await host.page.getByRole('button', { name: 'Lower hand for Pia' }).waitFor();
    await check(guest.page, 'call as a guest, chat open');
    await check(host.page, 'call as the host, a hand raised');
    await guest.page.getByRole('button', { name: 'Keyboard shortcuts' }).click();
    await guest.page.getByRole('dialog').waitFor();
    await check(guest.page, 'shortcuts dialog');
    await guest.page.keyboard.press('Escape');
    await host.page.getByRole('button', { name: 'Devices' }).click();
    await host.page.getByRole('dialog').waitFor();
    await check(host.page, 'devices dialog');
    await host.page.keyboard.press('Escape');
    await guest.page.getByRole('button', { name: 'Leave' }).click();
    await guest.page.getByText('You left the call').first().waitFor();
    await check(guest.page, 'after leaving');

    assert.deepEqual(found, []);
    for (const p of [host, guest]) await p.context.close();
  });

  it('the whole guest flow in Spanish, by the names a Spanish speaker sees, with no request elsewhere', async () => {
    const host = await newPerson(env.browser, env.server.url, { locale: 'es-ES' });
    const guest = await newPerson(env.browser, env.server.url, { locale: 'es-MX' });
    const foreign = [...[host, guest].map((p) => foreignRequests(p.context, env.server.url))];
    const link = await flow(host.page, guest.page, {
      username: 'Nombre de usuario', password: 'Contraseña', signUp: 'Registrarse', linkName: 'Nombre del enlace (opcional)',
      create: 'Crear enlace', callLink: 'Enlace de la llamada', join: 'Unirse', end: 'Finalizar llamada', name: 'Nombre',
      continue: 'Continuar', approve: 'Aprobar a Begoña', leave: 'Salir', guest: 'Begoña',
    });
    assert.equal(await guest.page.getAttribute('html', 'lang'), 'es');
    assert.equal(await guest.page.getAttribute('html', 'dir'), 'ltr');
    assert.ok(link);
    assert.deepEqual(foreign.flat(), []);
    for (const p of [host, guest]) await p.context.close();
  });

  it('the whole guest flow in Arabic, right to left, with no serious axe violation and no request elsewhere', async () => {
    const host = await newPerson(env.browser, env.server.url, { locale: 'ar-EG' });
    const guest = await newPerson(env.browser, env.server.url, { locale: 'ar' });
    const foreign = [host, guest].map((p) => foreignRequests(p.context, env.server.url));
    const violations: string[] = [];
    const axe = async (page: Page, what: string) => {
      for (const v of await seriousViolations(page)) violations.push(`${what}: ${v}`);
    };
    await host.page.goto('/');
    await host.page.getByRole('button', { name: 'تسجيل الدخول' }).waitFor();
    await axe(host.page, 'home');
    await flow(host.page, guest.page, {
      username: 'اسم المستخدم', password: 'كلمة المرور', signUp: 'إنشاء حساب', linkName: 'اسم الرابط (اختياري)',
      create: 'إنشاء رابط', callLink: 'رابط المكالمة', join: 'انضمام', end: 'إنهاء المكالمة', name: 'الاسم',
      continue: 'متابعة', approve: 'قبول ليلى', leave: 'مغادرة', guest: 'ليلى',
      beforeContinue: (page) => axe(page, 'join'),
    });
    assert.equal(await guest.page.getAttribute('html', 'dir'), 'rtl');
    assert.equal(await guest.page.getAttribute('html', 'lang'), 'ar');
    await axe(host.page, 'call (host)');
    await axe(guest.page, 'call (guest)');
    assert.deepEqual(violations, []);
    assert.deepEqual(foreign.flat(), []);
    for (const p of [host, guest]) await p.context.close();
  });

  it('French, German and Brazilian Portuguese follow the browser, and the picker switches and remembers, with no request elsewhere', async () => {
    for (const [locale, lang, signIn] of [['fr-CA', 'fr', 'Se connecter'], ['de-AT', 'de', 'Anmelden'], ['pt-PT', 'pt-BR', 'Entrar']] as const) {
      const person = await newPerson(env.browser, env.server.url, { locale });
      const foreign = foreignRequests(person.context, env.server.url);
      await person.page.goto('/');
      await person.page.getByRole('button', { name: signIn, exact: true }).waitFor();
      assert.equal(await person.page.getAttribute('html', 'lang'), lang);
      assert.deepEqual(foreign, []);
      await person.context.close();
    }
    const person = await newPerson(env.browser, env.server.url, { locale: 'en-US' });
    await person.page.goto('/');
    const picker = person.page.getByRole('combobox', { name: 'Language' });
    await picker.waitFor();
    const offered = await picker.locator('option').allTextContents();
    assert.deepEqual(offered, ['English', 'Español', 'Français', 'Deutsch', 'Português (Brasil)', 'العربية']);
    await picker.selectOption('de');
    await person.page.getByRole('button', { name: 'Anmelden', exact: true }).waitFor();
    await person.page.reload();
    await person.page.getByRole('button', { name: 'Anmelden', exact: true }).waitFor();
    assert.equal(await person.page.getAttribute('html', 'lang'), 'de');
    await person.context.close();
  });

  it('at 360×740 the Name box and Continue are on the first screen, in English and in Arabic', async () => {
    const host = await newPerson(env.browser, env.server.url);
    const link = await signUpAndCreateLink(host.page, 'phone_host', 'A call with a rather long name to wrap on a phone');
    for (const [locale, name, cont] of [['en-US', 'Name', 'Continue'], ['ar', 'الاسم', 'متابعة']] as const) {
      const guest = await newPerson(env.browser, env.server.url, { locale, viewport: { width: 360, height: 740 } });
      await guest.page.goto(link);
      const box = guest.page.getByRole('textbox', { name, exact: true });
      await box.waitFor();
      await guest.page.locator('meter').waitFor();
      await guest.page.getByRole('button', { name: locale === 'ar' ? 'الأجهزة' : 'Devices' }).waitFor();
      for (const [what, locator] of [['Name', box], ['Continue', guest.page.getByRole('button', { name: cont })]] as const) {
        const r = await locator.boundingBox();
        assert.ok(r, `${what} is drawn (${locale})`);
        assert.ok(r.y >= 0 && r.y + r.height <= 740 && r.x >= 0 && r.x + r.width <= 360, `${what} inside 360×740 in ${locale}: ${JSON.stringify(r)}`);
      }
      const preview = await guest.page.locator('video[aria-label]').first().boundingBox();
      assert.ok(preview && preview.y + preview.height <= 740, `the preview is on the first screen in ${locale}`);
      assert.equal(await guest.page.evaluate(() => window.scrollY), 0);
      await guest.context.close();
    }
    await host.context.close();
  });
});

interface Names {
  username: string; password: string; signUp: string; linkName: string; create: string; callLink: string;
  join: string; end: string; name: string; continue: string; approve: string; leave: string; guest: string;
  beforeContinue?: (page: Page) => Promise<void>;
}

/** Host signs up and creates a link, opens it; the guest opens it, types a name, Continue, Join; the host approves; both in the call. */
async function flow(host: Page, guest: Page, n: Names): Promise<string> {
  await host.goto('/');
  await host.getByRole('textbox', { name: n.username }).fill('lang_' + Math.random().toString(36).slice(2, 8));
  await host.getByLabel(n.password).fill('correct horse battery');
  await host.getByRole('button', { name: n.signUp }).click();
  await host.getByLabel(n.linkName).fill('Café المساء');
  await host.getByRole('button', { name: n.create }).click();
  const link = await host.getByRole('textbox', { name: n.callLink }).inputValue();
  await host.goto(link);
  await host.getByRole('button', { name: n.join, exact: true }).click();
  await host.getByRole('button', { name: n.end }).waitFor({ timeout: 30_000 });

  await guest.goto(link);
  const name = guest.getByRole('textbox', { name: n.name, exact: true });
  await name.fill(n.guest);
  await guest.locator('meter').waitFor();
  await n.beforeContinue?.(guest);
  await guest.getByRole('button', { name: n.continue }).click();
  await guest.getByRole('button', { name: n.join, exact: true }).click();
  await host.getByRole('button', { name: n.approve }).click();
  await guest.getByRole('button', { name: n.leave }).waitFor({ timeout: 30_000 });
  await host.getByRole('button', { name: n.end }).waitFor();
  return link;
}
