/**
 * What "a name" is, defined once: a person's display name and a call link's name. Both are shown
 * on other people's screens, so both refuse the characters that could disguise them. The server
 * checks link names; display names travel sealed, so every browser (and bot) checks them itself.
 */
import { z } from 'zod';

export const MAX_NAME_LENGTH = 64;
export const MAX_LINK_NAME_LENGTH = 80;

/**
 * C0/C1 controls, DEL, line/paragraph separators and bidi overrides and isolates
 * (U+202A–U+202E, U+2066–U+2069): they can disguise a name on someone else's screen.
 */
const NAME_FORBIDDEN_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/**
 * A string trimmed, then `min`–`max` characters long and free of `forbidden`; anything longer than
 * `rawMax` (default 4 × `max`) is refused before trimming.
 */
export function trimmedText(max: number, forbidden: RegExp, { min = 1, rawMax = max * 4 }: { min?: number; rawMax?: number } = {}) {
  return z
    .string()
    .max(rawMax)
    .transform((s) => s.trim())
    .pipe(
      z
        .string()
        .min(min)
        .max(max)
        .refine((s) => !forbidden.test(s)),
    );
}

/** A display name: trimmed, 1–64 characters, none of NAME_FORBIDDEN_CHARACTERS. Markup is just text. */
export const displayName = trimmedText(MAX_NAME_LENGTH, NAME_FORBIDDEN_CHARACTERS);

export function parseDisplayName(raw: unknown): string | undefined {
  const result = displayName.safeParse(raw);
  return result.success ? result.data : undefined;
}

/** A call link's name: trimmed, 1–80 characters, none of NAME_FORBIDDEN_CHARACTERS. */
export const linkName = trimmedText(MAX_LINK_NAME_LENGTH, NAME_FORBIDDEN_CHARACTERS, { rawMax: 200 });
/** A link name as asked for when creating a link: blank (after trimming) means "the default name". */
export const linkNameOrBlank = trimmedText(MAX_LINK_NAME_LENGTH, NAME_FORBIDDEN_CHARACTERS, { min: 0, rawMax: 200 });

export function parseLinkName(raw: unknown): string | undefined {
  const result = linkName.safeParse(raw);
  return result.success ? result.data : undefined;
}
