import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import sharp from 'sharp';
import { writeIdx } from '../../services/images/test/helpers/datasets.ts';
import { ARTIFACTS, launchChromium, onlyOrigin, screenshot } from './browser.ts';
import { startUiStack, type UiStack } from './stack.ts';

/** Long enough for a busy 2-core machine; every wait ends as soon as the page shows what it waits for. */
const WAIT = { timeout: 30_000 };

/**
 * Waits until a JavaScript expression in the page is truthy, polling from here: the page's policy
 * forbids eval, which page.waitForFunction with a string uses.
 */
async function until(page: Page, expression: string, timeoutMs = WAIT.timeout): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate(expression)) return;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${expression}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A small PNG of one colour; different colours, different bytes. */
function png(color: string, size = 24): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: color } })
    .png()
    .toBuffer();
}

/** A picture with structure (discs on a ground) so near-duplicate hashes mean something, and a lossy copy of it. */
async function pictureAndCopy(seed: number): Promise<[Buffer, Buffer]> {
  let state = seed;
  const random = () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
  const colour = () => `rgb(${Math.floor(random() * 256)},${Math.floor(random() * 256)},${Math.floor(random() * 256)})`;
  let discs = '';
  for (let i = 0; i < 12; i++) {
    discs += `<circle cx="${random() * 320}" cy="${random() * 240}" r="${10 + random() * 60}" fill="${colour()}"/>`;
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240"><rect width="100%" height="100%" fill="${colour()}"/>${discs}</svg>`;
  const picture = await sharp(Buffer.from(svg)).png().toBuffer();
  return [picture, await sharp(picture).resize(160).jpeg({ quality: 50 }).toBuffer()];
}

describe('the web page in Chromium against the whole stack', () => {
  let stack: UiStack;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let outside: string[];
  let files: string;
  const figures: Record<string, number> = {};

  /** Uploads an image through the gateway, as another client would. */
  async function upload(bytes: Buffer, fields: Record<string, string>): Promise<{ id: string }> {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append('file', new Blob([new Uint8Array(bytes)]), 'picture.png');
    const res = await fetch(`${stack.url}/images`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.token}` },
      body: form,
    });
    assert.ok(res.status === 201 || res.status === 200, `upload answered ${res.status}: ${await res.clone().text()}`);
    return (await res.json()) as { id: string };
  }

  /** Opens a view of the page by its hash. */
  async function open(hash: string, on: Page = page) {
    await on.goto(`${stack.url}/ui/${hash}`);
    await on.locator('main h1').first().waitFor(WAIT);
  }

  before(async () => {
    stack = await startUiStack();
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    outside = await onlyOrigin(page, stack.url);
    files = await mkdtemp(join(tmpdir(), 'berth-ui-files-'));
  });

  after(async () => {
    await writeFile(join(ARTIFACTS, 'figures.json'), `${JSON.stringify(figures, null, 2)}\n`).catch(() => undefined);
    await browser?.close();
    await stack?.stop();
    if (files) await rm(files, { recursive: true, force: true });
  });

  test('GET /ui redirects to the page, and GET / is still the Docker sample', async () => {
    const res = await fetch(`${stack.url}/ui`, { redirect: 'manual' });
    assert.equal(res.status, 301);
    assert.equal(res.headers.get('location'), '/ui/');
    const hello = await fetch(`${stack.url}/`);
    assert.match(await hello.text(), /^Hello World! I have been seen \d+ times\.\n$/);
  });

  test('the keyboard reaches "Skip to content" first and then the views', async () => {
    await page.goto(`${stack.url}/ui`);
    await page.locator('main h1').waitFor(WAIT);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.textContent.trim()'), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate('document.activeElement.id'), 'main');
    await page.reload();
    await page.locator('main h1').waitFor(WAIT);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.textContent.trim()'), 'berth');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate('document.activeElement.textContent.trim()'), 'Counter');
    const outline = await page.evaluate('getComputedStyle(document.activeElement).outlineStyle');
    assert.notEqual(outline, 'none', 'the focused link shows where the focus is');
  });

  test('settings keep the API token in this browser', async () => {
    await open('#/settings');
    await page.getByLabel('API token').fill(stack.token);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved the API token in this browser.').waitFor(WAIT);
    await page.reload();
    assert.equal(await page.getByLabel('API token').inputValue(), stack.token);
    assert.equal(await page.getByLabel('API token').getAttribute('type'), 'password');
    await screenshot(page, 'settings');
  });

  test('the counter view follows a counter that another client changes, and counts a visit to /', async () => {
    await open('#/');
    const value = page.getByTestId('counter-value');
    await value.waitFor(WAIT);
    assert.match((await value.textContent()) ?? '', /page-views\s+0/);
    const res = await fetch(`${stack.url}/counter/page-views/increment`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ by: 41 }),
    });
    assert.equal(res.status, 200);
    await page.getByTestId('counter-value').getByText('41').waitFor(WAIT);
    await page.getByRole('button', { name: 'Add 1' }).click();
    await page.getByTestId('counter-value').getByText('42').waitFor(WAIT);
    await page.getByRole('button', { name: 'Visit /' }).click();
    await page.getByText(/Hello World! I have been seen \d+ times\./).waitFor(WAIT);
    await screenshot(page, 'counter');
  });

  test('jokes: a random one, a search paged with "More jokes", and one added with the token', async () => {
    await open('#/jokes');
    await page.locator('blockquote.joke').waitFor(WAIT);
    const list = page.getByRole('list', { name: 'Jokes' }).locator('li');
    await list.first().waitFor(WAIT);
    const first = await list.count();
    assert.equal(first, 10, 'the first page has ten jokes');
    await page.getByRole('button', { name: 'More jokes' }).click();
    await until(page, `document.querySelectorAll('.joke-list li').length > ${first}`);

    const text = `A browser walks into a bar ${Date.now()}`;
    await page.getByLabel('Joke', { exact: true }).fill(text);
    await page.getByRole('button', { name: 'Add joke' }).click();
    await page.getByText(/Added joke #\d+\./).waitFor(WAIT);
    await page.getByLabel('Words to look for').fill('browser walks');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('list', { name: 'Jokes matching "browser walks"' }).getByText(text).waitFor(WAIT);
    await screenshot(page, 'jokes');
  });

  test('an image uploaded in the page, dropped on it or sent by another client appears from the live feed', async () => {
    await open('#/images?dataset=ui-live');
    await page.locator('.feed-state[data-state="live"]').waitFor(WAIT);
    await page.getByText('No images match these filters').waitFor(WAIT);

    // chosen with the file input
    await page.locator('input[name="upload-label"]').fill('cat');
    await page.locator('input[name="upload-files"]').setInputFiles({
      name: 'cat.png',
      mimeType: 'image/png',
      buffer: await png('#ff8800'),
    });
    await page.getByText(/cat\.png: stored as/).waitFor(WAIT);
    const live = page.locator('.grid li[data-source="live"]');
    await live.first().waitFor(WAIT);

    // uploaded by someone else
    const other = await upload(await png('#0088ff'), { dataset: 'ui-live', label: 'dog' });
    await page.locator(`.grid li[data-source="live"] a[data-id="${other.id}"]`).waitFor(WAIT);

    // dropped onto the drop zone
    const bytes = (await png('#22aa44')).toString('base64');
    const transfer = await page.evaluateHandle(`(() => {
      const bytes = Uint8Array.from(atob(${JSON.stringify(bytes)}), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
      return transfer;
    })()`);
    await page.getByTestId('dropzone').dispatchEvent('drop', { dataTransfer: transfer });
    await page.getByText(/dropped\.png: stored as/).waitFor(WAIT);
    await until(page, `document.querySelectorAll('.grid li[data-source="live"]').length === 3`);
    await page.getByRole('status').filter({ hasText: 'Live' }).first().waitFor(WAIT);
    assert.ok((await page.locator('ol.events li').count()) >= 3, 'the feed lists the three events');
    await screenshot(page, 'images');
  });

  test('choosing a label shows only the images with that label', async () => {
    for (const [i, label] of ['cat', 'cat', 'cat', 'dog', 'dog'].entries()) {
      await upload(await png(`#${(i * 40 + 16).toString(16).padStart(2, '0')}3366`), { dataset: 'ui-labels', label });
    }
    await open('#/images?dataset=ui-labels');
    await until(page, `document.querySelectorAll('.grid li').length === 5`);
    await page.locator('select[name="label"]').selectOption('cat');
    await until(page, `location.hash.includes('label=cat') && document.querySelectorAll('.grid li').length === 3`);
    const captions = await page.locator('.grid .caption').allInnerTexts();
    assert.deepEqual(captions, ['cat', 'cat', 'cat']);
    // the label list in the side bar does the same
    await page.getByRole('list', { name: 'Labels' }).getByRole('button', { name: /^dog/ }).click();
    await until(page, `document.querySelectorAll('.grid li').length === 2`);
    assert.deepEqual(await page.locator('.grid .caption').allInnerTexts(), ['dog', 'dog']);
  });

  test('an IDX import shows its progress until 100 %', async () => {
    const idx = await writeIdx(files, { count: 600, seed: 3 });
    await open('#/import');
    await page.getByLabel('Data set name').fill('ui-idx');
    await page.getByLabel('Split').selectOption('train');
    await page.locator('input[name="files"]').setInputFiles([idx.images, idx.labels]);
    await page.getByRole('button', { name: 'Import' }).click();
    const seen = new Set<string>();
    const percent = page.getByTestId('import-percent');
    await percent.waitFor(WAIT);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      seen.add((await percent.textContent()) ?? '');
      if ((await page.locator('.job').getAttribute('data-status')) === 'completed') break;
      await page.waitForTimeout(50);
    }
    seen.add((await percent.textContent()) ?? '');
    assert.equal(await page.locator('.job').getAttribute('data-status'), 'completed');
    assert.equal((await percent.textContent()) ?? '', '100 %');
    assert.equal(await page.locator('progress').getAttribute('value'), '100');
    await page.getByText('600 of 600 processed: 600 imported').waitFor(WAIT);
    await screenshot(page, 'import');
    figures.importPercentagesSeen = seen.size;
  });

  test('the gallery renders its first page of 100 thumbnails (time reported) and scrolls to the next', async (t) => {
    const measure = async (fresh: BrowserContext) => {
      const tab = await fresh.newPage();
      // no request interception here (onlyOrigin): it holds every request for a round trip to this
      // process, which is no part of what the page costs; what it asked for is checked afterwards
      await tab.goto(`${stack.url}/ui/#/images?dataset=ui-idx`);
      await until(tab, 'document.documentElement.dataset.galleryFirstPageMs !== undefined');
      const ms = Number(await tab.evaluate('document.documentElement.dataset.galleryFirstPageMs'));
      const shown = JSON.parse(
        String(
          await tab.evaluate(`JSON.stringify([...document.querySelectorAll('.grid img')].map((img) => ({
            decoded: img.complete && img.naturalWidth > 0,
            batched: img.src.startsWith('data:image/'),
            alt: img.alt,
          })))`),
        ),
      ) as { decoded: boolean; batched: boolean; alt: string }[];
      assert.equal(shown.filter((img) => img.decoded).length, 100, 'all 100 thumbnails decoded');
      assert.equal(shown.filter((img) => img.batched).length, 100, 'every thumbnail came from the page’s batch');
      assert.ok(
        shown.every((img) => /^\d, ui-idx, train$/.test(img.alt)),
        'each thumbnail says its label, data set and split',
      );
      // where the time went: the page of metadata, then the one batch of thumbnails, then decoding
      const split = JSON.parse(
        String(
          await tab.evaluate(`JSON.stringify((() => {
            const start = performance.getEntriesByName('gallery-first-page-start')[0].startTime;
            const entries = performance.getEntriesByType('resource');
            const list = entries.find((e) => e.name.includes('/images?'));
            const batches = entries.filter((e) => e.name.includes('/images/thumbnails?'));
            const single = entries.filter((e) => /\\/images\\/[^/]+\\/thumbnail/.test(e.name));
            return {
              listMs: Math.round(list.responseEnd - start),
              batchStartMs: Math.round(batches[0].startTime - start),
              batchWaitMs: Math.round(batches[0].responseStart - batches[0].requestStart),
              batchEndMs: Math.round(batches[0].responseEnd - start),
              batchBytes: batches[0].encodedBodySize,
              batches: batches.length,
              single: single.length,
            };
          })())`),
        ),
      ) as {
        listMs: number;
        batchStartMs: number;
        batchWaitMs: number;
        batchEndMs: number;
        batchBytes: number;
        batches: number;
        single: number;
      };
      const elsewhere = await tab.evaluate(
        `performance.getEntriesByType('resource').map((e) => e.name).filter((name) => !name.startsWith(${JSON.stringify(`${stack.url}/`)}))`,
      );
      assert.deepEqual(elsewhere, [], 'the gallery asked for nothing outside berth');
      assert.equal(split.batches, 1, 'one request for the page’s thumbnails');
      assert.equal(split.single, 0, 'no thumbnail asked for on its own');
      return { tab, ms, ...split };
    };
    // cold: a new browser profile and thumbnails the service may not have made yet
    const coldContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const cold = await measure(coldContext);
    // warm: a new browser profile again (nothing cached in the browser), thumbnails already made
    const warmContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const warm = await measure(warmContext);
    figures.galleryFirstPageColdMs = cold.ms;
    figures.galleryFirstPageWarmMs = warm.ms;
    figures.galleryListAnsweredColdMs = cold.listMs;
    figures.galleryBatchAnswerColdMs = cold.batchWaitMs;
    figures.galleryBatchDoneColdMs = cold.batchEndMs;
    figures.galleryListAnsweredWarmMs = warm.listMs;
    figures.galleryBatchAnswerWarmMs = warm.batchWaitMs;
    figures.galleryBatchDoneWarmMs = warm.batchEndMs;
    figures.galleryBatchBytes = warm.batchBytes;
    const where = (r: typeof cold) =>
      `list in ${r.listMs} ms, batch asked at ${r.batchStartMs} ms, answered in ${r.batchWaitMs} ms, done at ${r.batchEndMs} ms`;
    const line =
      `gallery first page of 100 thumbnails: ${cold.ms} ms cold (${where(cold)}), ` +
      `${warm.ms} ms warm (${where(warm)}); ${warm.batchBytes} bytes of thumbnails in one answer`;
    t.diagnostic(line);
    process.stdout.write(`# ${line}\n`);
    await screenshot(warm.tab, 'gallery');

    // infinite scroll: the end of the grid in view loads the next page
    await warm.tab.locator('button.more').scrollIntoViewIfNeeded();
    await until(warm.tab, `document.querySelectorAll('.grid li').length >= 200`);
    await coldContext.close();
    await warmContext.close();
  });

  test('an image’s page lists its near-duplicates', async () => {
    assert.ok(stack.worker, 'the images-worker (services/images/src/worker.ts) is needed for near-duplicates');
    const [picture, copy] = await pictureAndCopy(11);
    const original = await upload(picture, { dataset: 'ui-dups', label: 'scene' });
    const duplicate = await upload(copy, { dataset: 'ui-dups', label: 'scene-copy' });
    await open(`#/images/${original.id}`);
    await page
      .getByRole('img', { name: /scene, ui-dups/ })
      .first()
      .waitFor(WAIT);
    const list = page.getByRole('list', { name: 'Near-duplicates' });
    await list.locator(`a[data-id="${duplicate.id}"]`).waitFor(WAIT);
    // the verification score is shown with the pair
    assert.match((await list.textContent()) ?? '', /\d+\.\d % alike/);
    await screenshot(page, 'image-detail');
  });

  test('the leak report shows a test image that repeats a train image', async () => {
    assert.ok(stack.worker, 'the images-worker (services/images/src/worker.ts) is needed for the leak report');
    const [picture, copy] = await pictureAndCopy(29);
    const train = await upload(picture, { dataset: 'ui-leaks', label: 'scene', split: 'train' });
    const leaked = await upload(copy, { dataset: 'ui-leaks', label: 'scene', split: 'test' });
    await upload(await png('#123456', 64), { dataset: 'ui-leaks', label: 'other', split: 'test' });
    await open('#/leaks?dataset=ui-leaks');
    const pair = page.getByRole('list', { name: 'Leaks' }).locator('li.pair');
    await pair.first().waitFor(WAIT);
    assert.equal(await pair.count(), 1);
    assert.ok(await pair.locator(`a[data-id="${leaked.id}"]`).isVisible());
    assert.ok(await pair.locator(`a[data-id="${train.id}"]`).isVisible());
    assert.match((await pair.textContent()) ?? '', /\d+\.\d % alike/);
    await screenshot(page, 'leaks');
  });

  test('at phone width every view fits the screen', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const tab = await phone.newPage();
    const away = await onlyOrigin(tab, stack.url);
    for (const hash of [
      '#/',
      '#/jokes',
      '#/import',
      '#/leaks?dataset=ui-labels',
      '#/settings',
      '#/images?dataset=ui-labels',
    ]) {
      await open(hash, tab);
      const overflow = await tab.evaluate('document.documentElement.scrollWidth - window.innerWidth');
      assert.ok(Number(overflow) <= 0, `${hash} is ${overflow} px wider than the screen`);
    }
    await until(tab, `document.querySelectorAll('.grid li').length === 5`);
    assert.equal(await tab.evaluate('document.documentElement.scrollWidth - window.innerWidth'), 0);
    await screenshot(tab, 'images-phone');
    assert.deepEqual(away, []);
    await phone.close();
  });

  test('a service that is down is shown as down, and the rest of the page keeps working', async () => {
    await stack.stopService('jokes');
    await open('#/jokes');
    await page.getByRole('alert').filter({ hasText: 'A service is down' }).first().waitFor(WAIT);
    assert.match((await page.getByRole('alert').first().textContent()) ?? '', /503/);
    await screenshot(page, 'jokes-down');
    await open('#/images?dataset=ui-labels');
    await until(page, `document.querySelectorAll('.grid li').length === 5`);
  });

  test('the page asked for nothing outside berth', () => {
    assert.deepEqual(outside, []);
  });
});
