import { defineConfig } from 'vite';

/** Where `npm start` runs the gateway, for the dev server's proxy. */
const GATEWAY = 'http://127.0.0.1:5000';

// The page lives under /ui/ on the gateway and calls the API on the same origin, so no CORS and no
// absolute URLs; hashed file names let the gateway cache assets for a year.
export default defineConfig({
  base: '/ui/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // the browsers that run an es2022 bundle all support modulepreload
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  server: {
    proxy: { '/counter': GATEWAY, '/jokes': GATEWAY, '/images': GATEWAY },
  },
});
