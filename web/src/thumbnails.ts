import { api } from './api.ts';
import { readUrl } from './settings.ts';

/** The size the gallery shows thumbnails at, in CSS pixels. */
export const THUMBNAIL_SIZE = 128;

/** Ids the service answers for in one request. */
const MAX_BATCH = 100;

/** GET /images/thumbnails: each thumbnail found as base64, and the ids left out. */
interface ThumbnailBatch {
  items: { id: string; contentType: string; data: string }[];
  missing: string[];
}

/** One image's thumbnail on its own: for images that arrive one at a time, and those a batch left out. */
export function thumbnailUrl(id: string, size = THUMBNAIL_SIZE): string {
  return readUrl(`/images/${id}/thumbnail?size=${size}`);
}

/**
 * The thumbnails of a page of images in one request, as data: URLs by id. A data: URL is decoded
 * in the page's own process; a blob: URL costs a round trip to the browser process per image,
 * which measured longer than the whole request. Ids the answer leaves out are absent from the map;
 * the caller shows those through thumbnailUrl, which says what is wrong with them.
 */
export async function fetchThumbnails(
  ids: string[],
  signal: AbortSignal,
  size = THUMBNAIL_SIZE,
): Promise<Map<string, string>> {
  const batches: string[][] = [];
  for (let i = 0; i < ids.length; i += MAX_BATCH) batches.push(ids.slice(i, i + MAX_BATCH));
  const answers = await Promise.all(
    // ids are UUIDs, so the commas need no escaping
    batches.map((batch) => api<ThumbnailBatch>(`/images/thumbnails?size=${size}&ids=${batch.join(',')}`, { signal })),
  );
  const urls = new Map<string, string>();
  for (const answer of answers) {
    for (const item of answer.items) urls.set(item.id, `data:${item.contentType};base64,${item.data}`);
  }
  return urls;
}
