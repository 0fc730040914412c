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

const INSERT_EVENT = `INSERT INTO outbox (id, type, image_id, dataset, payload) VALUES ($1, $2, $3, $4, $5::jsonb)`;

/**
 * Writes an image's event row in the caller's transaction, so the event commits (or rolls back)
 * with the change itself. Call it after the image row was written: that write's row lock is what
 * makes an image's event order its commit order. New images write theirs in the insert itself.
 */
export async function recordEvent(tx: Tx, type: EventType, image: Image): Promise<void> {
  await tx.query(prepared(INSERT_EVENT, [uuidv7(), type, image.id, image.dataset, JSON.stringify(image)]));
  eventsWritten(tx);
}

/** Wakes the relays once `tx` commits; for statements that write event rows (recordEvent, insertImage). */
export function eventsWritten(tx: Tx): void {
  afterCommit(tx, committed);
}
