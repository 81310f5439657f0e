import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { iceConfig, turnCredentials } from '../src/server/http/ice.js';
import { metricValue, parsePrometheus, scrape } from './support/prometheus.js';
import { connectClient, createLink, signUp, startServer, until, type TestServer } from './support/server.js';

describe('operations: health, readiness, metrics, ICE servers', () => {
  let server: TestServer;
  const logs: string[] = [];

  before(async () => {
    server = await startServer({ logs });
  });
  after(() => server?.close());

  it('/healthz says the process is alive and /readyz that it takes new calls', async () => {
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { ok: boolean }).ok, true);
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true, database: true, cluster: true, draining: false });
  });

  it('/metrics parses as Prometheus text and counts calls, knocks, admissions and how people left', async () => {
    const before = await scrape(server.url);
    assert.equal(metricValue(before, 'linkcall_calls'), 0);
    const hostCookie = await signUp(server, 'olga');
    const link = await createLink(server, hostCookie, 'Metrics');
    const host = await connectClient(server, link, hostCookie);
    await host.call.join('Olga');
    await until(host.call, () => host.call.phase.kind === 'in-call');
    const guests: { guest: Awaited<ReturnType<typeof connectClient>>; id: string }[] = [];
    for (const name of ['Pia', 'Quinn']) {
      const guest = await connectClient(server, link);
      await guest.call.join(name);
      await until(host.call, () => [...host.call.knocks.values()].some((k) => k.name === name));
      guests.push({ guest, id: [...host.call.knocks.values()].find((k) => k.name === name)!.id });
    }
    await host.call.approve(guests[0]!.id);
    await until(guests[0]!.guest.call, () => guests[0]!.guest.call.phase.kind === 'in-call');
    host.call.decline(guests[1]!.id);
    await until(guests[1]!.guest.call, () => guests[1]!.guest.call.phase.kind === 'ended');

    const during = await scrape(server.url);
    assert.equal(metricValue(during, 'linkcall_calls'), 1);
    assert.equal(metricValue(during, 'linkcall_participants'), 2);
    assert.equal(metricValue(during, 'linkcall_waiting'), 0);
    assert.equal(metricValue(during, 'linkcall_calls_started_total'), 1);
    assert.equal(metricValue(during, 'linkcall_knocks_total'), 2);
    assert.equal(metricValue(during, 'linkcall_admissions_total'), 2, 'the host and Pia');
    assert.equal(metricValue(during, 'linkcall_participants_ended_total', { reason: 'declined' }), 1);
    assert.ok(metricValue(during, 'linkcall_signaling_connections')! >= 2);
    assert.ok(metricValue(during, 'process_cpu_seconds_total')! > 0);
    assert.ok(metricValue(during, 'linkcall_thread_cpu_seconds_total', { thread: 'main' })! > 0, 'CPU of the main thread');
    for (const name of ['linkcall_rtp_forwarded_packets_total', 'linkcall_rtp_forwarded_bytes_total', 'linkcall_rtp_lost_packets_total']) {
      assert.equal(typeof metricValue(during, name), 'number', name);
    }

    guests[0]!.guest.call.leave();
    await until(host.call, () => host.call.participants.size === 0);
    host.call.end();
    await until(host.call, () => host.call.phase.kind === 'ended');
    const afterwards = await scrape(server.url);
    assert.equal(metricValue(afterwards, 'linkcall_calls'), 0);
    assert.equal(metricValue(afterwards, 'linkcall_participants_ended_total', { reason: 'left' }), 1);
    assert.equal(metricValue(afterwards, 'linkcall_participants_ended_total', { reason: 'call_ended' }), 1);
    for (const c of [host, ...guests.map((g) => g.guest)]) c.signaling.close();
  });

  it('metrics and logs carry no names, link ids or addresses', async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    for (const word of ['olga', 'Olga', 'Pia', 'Quinn', 'Metrics', '127.0.0.1']) assert.ok(!text.includes(word), `metrics mention ${word}`);
    for (const line of logs) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      assert.equal(typeof entry.level, 'number', 'logs are JSON lines (pino)');
      for (const word of ['Pia', 'Quinn', 'olga']) assert.ok(!line.includes(word), `a log line mentions ${word}`);
    }
  });

  it('the Prometheus reader refuses what a scraper would refuse', () => {
    assert.throws(() => parsePrometheus('x 1\n'), /before its TYPE/);
    assert.throws(() => parsePrometheus('# TYPE x counter\nx one\n'), /bad value/);
    assert.throws(() => parsePrometheus('# TYPE x counter\nx 1\nx 2\n'), /repeated/);
    assert.deepEqual(parsePrometheus('# HELP x a\n# TYPE x gauge\nx{a="b \\"c\\""} 2\n'), [{ name: 'x', labels: { a: 'b "c"' }, value: 2 }]);
  });

  it('ICE servers: none by default; with TURN, REST credentials that expire', async () => {
    const hostCookie = await signUp(server, 'rita');
    const link = await createLink(server, hostCookie);
    const res = await fetch(`${server.url}/api/links/${link.id}/ice`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { iceServers: [], iceTransportPolicy: 'all' });
    assert.equal((await fetch(`${server.url}/api/links/AAAAAAAAAAAAAAAAAAAAAA/ice`)).status, 404, 'only for a real link');

    const now = 1_760_000_000_000;
    const config = iceConfig(
      { turn: { urls: ['stun:turn.example:3478', 'turn:turn.example:3478?transport=udp'], secret: 'a-shared-secret-of-16+', ttlSeconds: 600 }, iceTransportPolicy: 'relay' },
      now,
    );
    assert.equal(config.iceTransportPolicy, 'relay');
    assert.deepEqual(config.iceServers[0], { urls: ['stun:turn.example:3478'] });
    const turn = config.iceServers[1]!;
    assert.deepEqual(turn.urls, ['turn:turn.example:3478?transport=udp']);
    const [expiry, id] = turn.username!.split(':');
    assert.equal(Number(expiry), now / 1000 + 600);
    assert.match(id!, /^[A-Za-z0-9_-]{8}$/);
    assert.equal(turn.credential, createHmac('sha1', 'a-shared-secret-of-16+').update(turn.username!).digest('base64'));
    assert.notEqual(turnCredentials('s'.repeat(16), 60).username, turnCredentials('s'.repeat(16), 60).username, 'a fresh id each time');
  });
});
