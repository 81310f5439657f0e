/**
 * HTTP shapes of "Check my connection" (`/check`): the page offers a data-channel-only
 * connection per network path, the server answers it and echoes what the page sends, so the page
 * learns which paths reach this server and their round-trip time. One copy for server and page.
 */
import { z } from 'zod';

/** An offer is a few kilobytes; anything much larger is not one. */
export const checkOffer = z.strictObject({ sdp: z.string().min(1).max(32 * 1024) });
export const checkAnswer = z.strictObject({ sdp: z.string().min(1) });
export type CheckOffer = z.infer<typeof checkOffer>;
export type CheckAnswer = z.infer<typeof checkAnswer>;
