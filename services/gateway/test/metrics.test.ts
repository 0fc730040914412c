import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { closedPort, gateway } from './helpers.ts';

/** The value of one series in /metrics text, or undefined when it is not there. */
async function metric(app: FastifyInstance, series: string): Promise<number | undefined> {
  const text = (await app.inject('/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `) || l.startsWith(`${series.slice(0, -1)},`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('gateway metrics', () => {
  const apps: FastifyInstance[] = [];
  after(() => Promise.all(apps.map((app) => app.close())));

  test('the circuit state per upstream and the times it opened', async () => {
    const app = gateway({ COUNTER_URL: `http://127.0.0.1:${await closedPort()}`, CIRCUIT_FAILURES: '2' });
    apps.push(app);
    const state = 'gateway_circuit_state{upstream="counter",service="gateway"}';
    const opens = 'gateway_circuit_opens_total{upstream="counter",service="gateway"}';
    assert.equal(await metric(app, state), 0);
    assert.equal(await metric(app, opens), 0);
    for (let i = 0; i < 3; i++) assert.equal((await app.inject('/counter/x')).statusCode, 503);
    assert.equal(await metric(app, state), 2, 'open');
    assert.equal(await metric(app, opens), 1);
  });

  test('requests refused for the rate limit', async () => {
    const app = gateway({ COUNTER_URL: `http://127.0.0.1:${await closedPort()}`, RATE_LIMIT_MAX: '2' });
    apps.push(app);
    const series = 'gateway_rate_limited_total{service="gateway"}';
    assert.equal(await metric(app, series), 0);
    const codes = [];
    for (let i = 0; i < 4; i++) codes.push((await app.inject('/counter/x')).statusCode);
    assert.deepEqual(codes.slice(2), [429, 429]);
    assert.equal(await metric(app, series), 2);
  });
});
