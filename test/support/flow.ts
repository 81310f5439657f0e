/** The product's flow in Chromium, step by step, finding controls by role and accessible name. */
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';

export const text = (page: Page, t: string | RegExp, timeout = 30_000) => page.getByText(t).first().waitFor({ timeout });

/** Sign up a host, create a link and return the full Call link (secret in the fragment). */
export async function signUpAndCreateLink(page: Page, username: string, linkName: string): Promise<string> {
  await page.goto('/');
  await page.getByRole('textbox', { name: 'Username' }).fill(username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign up' }).click();
  await page.getByLabel('Link name (optional)').fill(linkName);
  await page.getByRole('button', { name: 'Create Link' }).click();
  const link = await page.getByRole('textbox', { name: 'Call link' }).inputValue();
  assert.match(link, /\/join\/[A-Za-z0-9_-]{22}#k=[A-Za-z0-9_-]{43}&h=[A-Za-z0-9_-]{43}$/);
  return link;
}

/** The link's owner opens it and enters the call without knocking. */
export async function hostEnters(page: Page, link: string): Promise<void> {
  await page.goto(link);
  await page.getByRole('button', { name: 'Join' }).click();
  await page.getByRole('button', { name: 'End call' }).waitFor({ timeout: 30_000 });
}

/** A guest opens the link, gives a name and asks to be let in. */
export async function guestKnocks(page: Page, link: string, name: string): Promise<void> {
  await page.goto(link);
  await page.getByRole('textbox', { name: 'Name' }).fill(name);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('button', { name: 'Join' }).click();
}
