import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorResponse, httpError } from '@berth/service-kit';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from 'typebox';

/** The built page of this checkout (web/dist), where `npm run build` puts it and the image copies it. */
export const DEFAULT_UI_DIR = fileURLToPath(new URL('../../../../web/dist/', import.meta.url));

/**
 * The page's Content-Security-Policy, in place of the API's "nothing loads": its own scripts,
 * styles, images and API calls from this origin only, no inline code, no framing. data: is for the
 * empty favicon and the gallery's thumbnails (a page of them arrives as base64 in one answer of
 * GET /images/thumbnails), blob: for previews of files picked for upload.
 */
export const UI_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Assets have content hashes in their names, so a browser may keep them for a year. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** index.html names the current assets, so it is checked again every time (cheap with its ETag). */
const REVALIDATE = 'no-cache';

const FileResponse = {
  200: Type.String({ description: 'the file' }),
  304: Type.Null({ description: 'not modified since the ETag the browser sent' }),
  404: ErrorResponse,
  503: ErrorResponse,
};

/** Headers of the page's answers: its own policy and the headers that matter for documents. */
function pageHeaders(reply: FastifyReply) {
  reply.header('content-security-policy', UI_POLICY);
  reply.header('referrer-policy', 'no-referrer');
  reply.header('cross-origin-opener-policy', 'same-origin');
}

/**
 * The web page at /ui/: index.html revalidated on every load, hashed assets cached for good.
 * /ui redirects to /ui/ so the page's relative paths resolve. Without a built page (no
 * index.html in `dir`) these paths answer 503 saying how to build it, and the API works as before.
 */
export function uiRoutes(app: FastifyInstance, dir: string) {
  const root = dir || DEFAULT_UI_DIR;
  const built = existsSync(join(root, 'index.html'));
  app.register(async (scope) => {
    scope.addHook('onRequest', async (_request, reply) => pageHeaders(reply));

    scope.get(
      '/ui',
      {
        schema: {
          summary: 'Redirects to the web page at /ui/',
          response: { 301: Type.Null({ description: 'to /ui/' }), 503: ErrorResponse },
        },
      },
      async (request, reply) => {
        const at = request.url.indexOf('?');
        return reply.redirect(`/ui/${at < 0 ? '' : request.url.slice(at)}`, 301);
      },
    );

    if (!built) {
      app.log.warn({ dir: root }, 'the web page is not built, so /ui/ answers 503; run "npm run build -w web"');
      const notBuilt = async () => {
        throw httpError(
          503,
          'UI_NOT_BUILT',
          `The web page is not built in "${root}"; run "npm run build -w web" or set UI_DIR`,
        );
      };
      scope.get('/ui/', { schema: { summary: 'The web page', response: FileResponse } }, notBuilt);
      scope.get('/ui/*', { schema: { summary: 'The web page’s files', response: FileResponse } }, notBuilt);
      return;
    }

    await scope.register(fastifyStatic, {
      root,
      serve: false,
      index: false,
      dotfiles: 'ignore',
      cacheControl: false,
      // only on files actually sent, so a 404 is not cached
      setHeaders(reply: FastifyReply, path: string) {
        reply.header('cache-control', path.startsWith(join(root, 'assets')) ? IMMUTABLE : REVALIDATE);
      },
    });
    scope.get('/ui/', { schema: { summary: 'The web page', response: FileResponse } }, (_request, reply) =>
      reply.sendFile('index.html'),
    );
    scope.get(
      '/ui/*',
      {
        schema: {
          summary: 'The web page’s files: hashed assets under /ui/assets/ cached for a year',
          params: Type.Object({ '*': Type.String() }),
          response: FileResponse,
        },
      },
      (request, reply) => reply.sendFile((request.params as { '*': string })['*']),
    );
  });
}
