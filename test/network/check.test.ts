/**
 * "Check my connection" from behind a firewall that drops all UDP (the network lab): the page
 * reports that neither the direct path nor TURN over UDP gets through, that the relay over TCP
 * and over TLS does, and says in its verdict that the call will be relayed through port 443.
 * coturn sits in its own namespace (TLS on 443, certificate made by the test). Skips, saying why,
 * where namespaces cannot be made.
 */
import { after, before, describe, test } from 'node:test';
import { newPerson } from '../support/browser.js';
import { text } from '../support/flow.js';
import { startLabCoturn, type LabCoturn } from '../support/lab-coturn.js';
import { labUnavailable, NetLab, type LabServer } from '../support/netlab.js';

const unavailable = labUnavailable();
if (unavailable) console.log(`# network lab skipped: ${unavailable}`);

describe('Check my connection in the network lab', { skip: unavailable, timeout: 180_000 }, () => {
  let lab: NetLab;
  let coturn: LabCoturn;
  let server: LabServer;
  before(async () => {
    lab = await NetLab.create(['server', 'turn', 'guest']);
    coturn = await startLabCoturn(lab, 'turn');
    server = await lab.startServer('server', { TURN_URLS: [coturn.urls.udp, coturn.urls.tcp, coturn.urls.tls].join(','), TURN_SECRET: coturn.secret });
  });
  after(async () => {
    await server?.close();
    await coturn?.close();
    await lab?.close();
  });

  test('with UDP blocked it reports the relay over TCP and TLS, and that the call goes through port 443', async () => {
    await lab.impair('guest', 'both', { blockUdp: true });
    const browser = await lab.launchChromium('guest', server.url, [coturn.chromiumTrust]);
    try {
      const { page } = await newPerson(browser, server.url);
      await page.goto('/check');
      const verdict = 'Your network blocks calls over UDP. linkcall will relay your call through port 443; it will work, with slightly more delay.';
      await text(page, verdict, 60_000);
      await text(page, 'Directly over UDP: does not get through');
      await text(page, 'Through the relay over UDP: does not get through');
      await text(page, /^Through the relay over TCP: works, \d+ ms round trip$/);
      await text(page, /^Through the relay over TLS: works, \d+ ms round trip$/);
    } finally {
      await browser.close();
    }
  });
});
