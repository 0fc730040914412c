import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { loadConfig } from '@berth/service-kit';
import Fastify, { type FastifyInstance } from 'fastify';
import { buildApp, type GatewayDeps } from '../src/app.ts';
import { GatewayEnv } from '../src/config.ts';

/** The API token test gateways accept for writes. */
export const TEST_TOKEN = 'test-token-0123456789abcdef';

/** Headers that carry the test token. */
export const authorized = { authorization: `Bearer ${TEST_TOKEN}` };

/**
 * A gateway app built from env overrides, quiet unless LOG_LEVEL is set. It accepts TEST_TOKEN and
 * counts rate limits in memory unless a Redis client is given.
 */
export function gateway(env: Record<string, string>, deps: GatewayDeps = {}) {
  const config = loadConfig(GatewayEnv, { LOG_LEVEL: 'silent', JOKES_URL: '', IMAGES_URL: '', ...env });
  return buildApp(config, { tokens: [TEST_TOKEN], ...deps });
}

/** A port nothing listens on: bound once, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts a Fastify app on a free loopback port and returns its base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/** How many event streams the test upstream has seen closed by the other side. */
export let eventStreamsClosed = 0;

/** An upstream that reports what it received, answers slowly or big on request, for proxy tests. */
export function echoUpstream(): FastifyInstance {
  // uploads of a few MiB pass, as they do to the images service
  const app = Fastify({ bodyLimit: 16 * 1024 * 1024 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  const echo = async (request: { method: string; url: string; headers: unknown; body?: unknown }) => ({
    method: request.method,
    url: request.url,
    headers: request.headers,
    body: Buffer.isBuffer(request.body) ? request.body.toString('utf8') : null,
  });
  app.all('/counter', echo);
  app.all('/counter/echo/*', echo);
  app.all('/images', echo);
  app.all('/images/*', echo);
  app.get('/counter/slow', async () => {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    return { late: true };
  });
  app.get('/counter/big', async (_request, reply) => {
    reply.type('application/octet-stream');
    return Buffer.alloc(1024 * 1024 + 7, 7);
  });
  app.get('/counter/created', async (_request, reply) => {
    reply.code(201).header('location', '/counter/x').header('set-cookie', ['a=1', 'b=2']);
    return { created: true };
  });
  app.get('/counter/events', (request, reply) => {
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let n = 0;
    const tick = setInterval(() => reply.raw.write(`id: ${++n}\ndata: tick ${n}\n\n`), 50);
    request.raw.on('close', () => {
      clearInterval(tick);
      app.log.info('event stream closed');
      eventStreamsClosed += 1;
    });
  });
  // an event stream that sends its headers and a first event, then only what it is given
  app.get('/images/events', (request, reply) => {
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    reply.raw.write(': open\n\n');
    request.raw.on('close', () => {
      eventStreamsClosed += 1;
    });
  });
  // headers at once, then a body that never comes: an ordinary answer that stalls
  app.get('/images/stalls', (_request, reply) => {
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' });
    reply.raw.write(': first\n\n');
  });
  app.get('/counter/varies', async (_request, reply) => {
    reply.header('vary', 'Accept-Encoding');
    return { varies: true };
  });
  app.get('/readyz', async () => ({ status: 'ready' }));
  return app;
}

/** GET (or another method) with the path sent exactly as written (no client-side normalisation). */
export function rawGet(
  base: string,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ statusCode: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/`, { path, agent: false, headers, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
