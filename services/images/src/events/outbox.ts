import type { Image } from '../db/images.ts';
import { afterCommit, prepared, type Tx } from '../db/transaction.ts';
import { uuidv7 } from '../ids.ts';

/** What happened to an image. */
export const EVENT_TYPES = ['created', 'updated', 'deleted'] as const;
/** One of the event types. */
export type EventType = (typeof EVENT_TYPES)[number];

/** An event as it goes on the wire (the JSON body of a JetStream message and of an SSE event). */
export interface ImageEvent {
  id: string;
  type: EventType;
  occurredAt: string;
  dataset: string;
  imageId: string;
  image: Image;
}

type Listener = () => void;
const listeners = new Set<Listener>();

/**
 * Calls `listener` after every commit in this process that wrote event rows, so a relay publishes
 * them at once instead of at its next poll. Returns the function that stops it.
 */
export function onEventsCommitted(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function committed(): void {
  for (const listener of listeners) listener();
}

const INSERT_EVENTS = `INSERT INTO outbox (id, type, image_id, dataset, payload)
  SELECT id, $1, image_id, dataset, payload
  FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::jsonb[]) AS e(id, image_id, dataset, payload)`;

/**
 * Writes one event row per image, in the caller's transaction and in one statement, so the events
 * commit (or roll back) with the change itself. Call it after the image row was written: that
 * write's row lock is what makes an image's event order its commit order.
 */
export async function recordEvents(tx: Tx, type: EventType, images: Image[]): Promise<void> {
  if (images.length === 0) return;
  await tx.query(
    prepared(INSERT_EVENTS, [
      type,
      images.map(() => uuidv7()),
      images.map((image) => image.id),
      images.map((image) => image.dataset),
      images.map((image) => JSON.stringify(image)),
    ]),
  );
  afterCommit(tx, committed);
}

/** recordEvents for one image. */
export function recordEvent(tx: Tx, type: EventType, image: Image): Promise<void> {
  return recordEvents(tx, type, [image]);
}
