import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { missingSchemas, registeredRoutes } from '@berth/service-kit';
import type { FastifyInstance } from 'fastify';
import { counterApp } from '../services/counter/test/helpers.ts';
import { gateway } from '../services/gateway/test/helpers.ts';
import { testApp as imagesApp, tempDir } from '../services/images/test/helpers/app.ts';
import { testApp as jokesApp } from '../services/jokes/test/helpers/app.ts';

// Only the route table is looked at: the databases need not exist, nothing is asked of them
const NO_DATABASE = 'postgres://postgres@127.0.0.1:5432/berth_route_schemas_no_such_database';

/** Routes that describe themselves by other means, by name: probes, metrics and documents. */
const EXEMPT = [/^GET \/(healthz|readyz|metrics)$/, /^GET (\/[a-z]+)?\/openapi\.json$/, /^GET \/docs(\/|$)/];

/** Every route the app registered that lacks a request or response schema, with what it lacks. */
function offenders(app: FastifyInstance, skip: (route: string) => boolean = () => false): string[] {
  const found: string[] = [];
  for (const route of registeredRoutes(app)) {
    const methods = [route.method].flat().filter((m) => m !== 'HEAD');
    for (const method of methods) {
      const name = `${method} ${route.url}`;
      if (EXEMPT.some((rule) => rule.test(name)) || skip(name)) continue;
      const missing = missingSchemas({ ...route, method });
      if (missing.length > 0) found.push(`${name}: ${missing.join(', ')}`);
    }
  }
  return found;
}

function assertDescribed(app: FastifyInstance, skip?: (route: string) => boolean) {
  assert.ok(registeredRoutes(app).length > 3, 'the app registered its routes through createService');
  const found = offenders(app, skip);
  assert.deepEqual(found, [], `Routes without full schemas:\n  ${found.join('\n  ')}`);
}

/** The paths of a service's own document, as it serves them. */
async function documentPaths(app: FastifyInstance, url: string): Promise<string[]> {
  const res = await app.inject(url);
  assert.equal(res.statusCode, 200);
  const doc = res.json();
  assert.equal(doc.openapi, '3.0.3');
  return Object.keys(doc.paths).sort();
}

describe('every route declares request and response schemas', () => {
  const apps: FastifyInstance[] = [];
  let counter: FastifyInstance;
  let jokes: FastifyInstance;
  let images: FastifyInstance;
  let dir: Awaited<ReturnType<typeof tempDir>>;

  before(async () => {
    counter = counterApp({ REDIS_KEY_PREFIX: 'route-schemas:' }).app;
    jokes = jokesApp(NO_DATABASE);
    dir = await tempDir();
    images = (await imagesApp(NO_DATABASE, dir.path)).app;
    apps.push(counter, jokes, images);
    await Promise.all([counter.ready(), jokes.ready()]);
  });

  after(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await dir.remove();
  });

  test('counter', async () => {
    assertDescribed(counter);
    const paths = await documentPaths(counter, '/counter/openapi.json');
    assert.ok(paths.includes('/') && paths.includes('/counter/{name}'), paths.join(', '));
    assert.ok(!paths.includes('/healthz'), 'health routes stay out of the document');
  });

  test('jokes', async () => {
    assertDescribed(jokes);
    const paths = await documentPaths(jokes, '/jokes/openapi.json');
    assert.ok(
      paths.every((p) => p.startsWith('/jokes')),
      paths.join(', '),
    );
  });

  test('images', async () => {
    assertDescribed(images);
    const paths = await documentPaths(images, '/images/openapi.json');
    assert.ok(
      paths.every((p) => p.startsWith('/images')),
      paths.join(', '),
    );
  });

  test('gateway (the forwarded paths are described by the services)', async () => {
    const app = gateway({ COUNTER_URL: '', JOKES_URL: '', IMAGES_URL: '' });
    apps.push(app);
    await app.ready();
    const forwarded = (route: string) => /^[A-Z]+ \/(counter|jokes|images)?(\/\*)?$/.test(route);
    assertDescribed(app, forwarded);
  });
});
