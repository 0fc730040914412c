import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { echoUpstream, gateway, listen } from './helpers.ts';

/** An open event stream through the gateway: its status, and a way to close it. */
interface OpenStream {
  statusCode: number;
  body: string;
  close(): void;
  /** Calls back when the gateway ends the stream. */
  onClose(callback: () => void): void;
}

/** Opens GET <path> with accept: text/event-stream on its own connection; resolves once the headers are in. */
function openStream(base: string, path: string, headers: Record<string, string> = {}): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      { agent: false, headers: { accept: 'text/event-stream', ...headers } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('error', () => {});
        const stream = {
          statusCode: res.statusCode ?? 0,
          body: '',
          close: () => req.destroy(),
          onClose: (callback: () => void) => res.on('close', callback),
        };
        if ((res.statusCode ?? 0) >= 400) res.on('end', () => resolve({ ...stream, body }));
        else resolve(stream);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('gateway event streams', () => {
  let upstream: FastifyInstance;
  let upstreamUrl: string;
  const open: OpenStream[] = [];

  /** Runs body against a listening gateway to the test upstream; closes its streams and the gateway after. */
  async function withGateway(env: Record<string, string>, body: (base: string) => Promise<void>) {
    const app = gateway({ IMAGES_URL: upstreamUrl, ...env });
    try {
      await body(await listen(app));
    } finally {
      for (const stream of open.splice(0)) stream.close();
      await app.close();
    }
  }

  before(async () => {
    upstream = echoUpstream();
    upstreamUrl = await listen(upstream);
  });

  after(async () => {
    for (const stream of open) stream.close();
    await upstream.close();
  });

  test('open event streams do not take the connections ordinary requests need', async () => {
    await withGateway({ UPSTREAM_CONNECTIONS: '4', UPSTREAM_TIMEOUT_MS: '1000' }, async (base) => {
      for (let i = 0; i < 6; i += 1) {
        const stream = await openStream(base, '/images/events');
        open.push(stream);
        assert.equal(stream.statusCode, 200);
      }
      const started = performance.now();
      const res = await fetch(`${base}/images?limit=1`, { signal: AbortSignal.timeout(3000) });
      assert.equal(res.status, 200);
      assert.ok(performance.now() - started < 1000, 'an ordinary request answered at once');
    });
  });

  test('answers 429 past EVENT_STREAMS_PER_CLIENT and 503 past EVENT_STREAMS_MAX', async () => {
    await withGateway(
      {
        EVENT_STREAMS_MAX: '3',
        EVENT_STREAMS_PER_CLIENT: '2',
        TRUSTED_PROXIES: '127.0.0.1',
      },
      async (base) => {
        const from = (ip: string) => ({ 'x-forwarded-for': ip });
        for (const ip of ['203.0.113.1', '203.0.113.1']) open.push(await openStream(base, '/images/events', from(ip)));
        assert.deepEqual(
          open.map((s) => s.statusCode),
          [200, 200],
        );
        const third = await openStream(base, '/images/events', from('203.0.113.1'));
        assert.equal(third.statusCode, 429);
        const refused = JSON.parse(third.body);
        assert.equal(refused.code, 'TOO_MANY_EVENT_STREAMS');
        assert.match(refused.message, /"203\.0\.113\.1" already has 2 event streams open/);

        open.push(await openStream(base, '/images/events', from('203.0.113.2')));
        assert.equal(open[2]?.statusCode, 200);
        const full = await openStream(base, '/images/events', from('203.0.113.3'));
        assert.equal(full.statusCode, 503);
        assert.equal(JSON.parse(full.body).code, 'EVENT_STREAMS_FULL');

        // a stream that closes gives its place back
        open.shift()?.close();
        const deadline = Date.now() + 2000;
        let again = await openStream(base, '/images/events', from('203.0.113.3'));
        while (again.statusCode !== 200 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          again = await openStream(base, '/images/events', from('203.0.113.3'));
        }
        open.push(again);
        assert.equal(again.statusCode, 200);
        const metrics = await (await fetch(`${base}/metrics`)).text();
        assert.match(metrics, /gateway_event_streams\{[^}]*\} 3/);
      },
    );
  });

  test('keeps an event stream open past UPSTREAM_TIMEOUT_MS and IDLE_TIMEOUT_MS', async () => {
    await withGateway({ UPSTREAM_TIMEOUT_MS: '200', IDLE_TIMEOUT_MS: '300' }, async (base) => {
      const stream = await openStream(base, '/images/events');
      open.push(stream);
      let closedAfter: number | undefined;
      const started = performance.now();
      stream.onClose(() => {
        closedAfter = performance.now() - started;
      });
      await new Promise((resolve) => setTimeout(resolve, 900));
      assert.equal(closedAfter, undefined, `the stream was cut after ${closedAfter} ms`);
      const res = await fetch(`${base}/images/x`);
      assert.equal(res.status, 200, 'the gateway still answers');
    });
  });

  test('holds any other request that asks for text/event-stream to the upstream timeout', async () => {
    await withGateway({ UPSTREAM_TIMEOUT_MS: '200', IDLE_TIMEOUT_MS: '300' }, async (base) => {
      const started = performance.now();
      const ended = await new Promise<string>((resolve) => {
        const req = request(
          `${base}/images/stalls`,
          { agent: false, headers: { accept: 'text/event-stream' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve('end'));
            res.on('error', () => resolve('error'));
            res.on('close', () => resolve('close'));
          },
        );
        req.on('error', () => resolve('error'));
        req.setTimeout(5000, () => {
          resolve('still open');
          req.destroy();
        });
        req.end();
      });
      assert.notEqual(ended, 'still open');
      assert.ok(performance.now() - started < 2000, `cut after ${performance.now() - started} ms`);
    });
  });
});
