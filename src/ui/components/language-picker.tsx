/** The language picker: each language named in itself; the choice is remembered in this browser. */
import { chooseLanguage, language, LANGUAGES, t, type Language } from '../i18n/locale.js';

export function LanguagePicker() {
  return (
    <label class="language-picker">
      <span class="small">{t('app.language')}</span>
      <select value={language()} onChange={(e) => void chooseLanguage(e.currentTarget.value as Language)}>
        {LANGUAGES.map((l) => (
          <option key={l.code} value={l.code} lang={l.code} translate={false}>
            {l.name}
          </option>
        ))}
      </select>
    </label>
  );
}
