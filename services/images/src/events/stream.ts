import {
  DiscardPolicy,
  type NatsConnection,
  nanos,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from 'nats';
import type { EventType } from './outbox.ts';

/** The JetStream stream image events go to, and its limits. */
export interface StreamSettings {
  /** EVENTS_STREAM, default IMAGES. */
  name: string;
  /** EVENTS_SUBJECT_PREFIX, default images: subjects are `<prefix>.<type>.<dataset token>`. */
  subjectPrefix: string;
  /** How long JetStream remembers a Nats-Msg-Id to drop a republished copy. */
  duplicateWindowMs: number;
  /** Events older than this are dropped from the stream; 0 keeps them (up to maxBytes). */
  maxAgeMs: number;
  /** The stream's size cap (oldest dropped first); -1 for none. */
  maxBytes: number;
  /** Copies kept in a NATS cluster (1 on a single server). */
  replicas: number;
}

/**
 * A data set name as one subject token. Names may hold "." (the subject separator) but never "~",
 * so "." is written as "~" (mnist.v2 → images.created.mnist~v2), which reads back unambiguously.
 */
export function datasetToken(dataset: string): string {
  return dataset.replaceAll('.', '~');
}

/** The data set a subject token stands for. */
export function datasetFromToken(token: string): string {
  return token.replaceAll('~', '.');
}

/** The subject an event is published on. */
export function subjectFor(prefix: string, type: EventType, dataset: string): string {
  return `${prefix}.${type}.${datasetToken(dataset)}`;
}

/** The subject filter for events of one type and/or one data set (all events when neither is given). */
export function subjectFilter(prefix: string, filter: { type?: EventType; dataset?: string } = {}): string {
  if (filter.type === undefined && filter.dataset === undefined) return `${prefix}.>`;
  return `${prefix}.${filter.type ?? '*'}.${filter.dataset === undefined ? '*' : datasetToken(filter.dataset)}`;
}

/** The stream configuration the settings stand for. */
export function streamConfig(settings: StreamSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: settings.name,
    subjects: [`${settings.subjectPrefix}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(settings.duplicateWindowMs),
    max_age: nanos(settings.maxAgeMs),
    max_bytes: settings.maxBytes,
    num_replicas: settings.replicas,
  };
}

const COMPARED = ['duplicate_window', 'max_age', 'max_bytes', 'num_replicas', 'discard'] as const;

function sameSubjects(a: string[] | undefined, b: string[] | undefined): boolean {
  return JSON.stringify([...(a ?? [])].sort()) === JSON.stringify([...(b ?? [])].sort());
}

/** The stream on the server cannot keep what the outbox hands it as berth needs; events wait in the outbox. */
export class StreamSettingsError extends Error {
  override name = 'StreamSettingsError';
}

/**
 * What is wrong with a stream for the outbox to rely on it, or undefined: it must be on disk (file
 * storage), keep as many copies as EVENTS_REPLICAS says and drop republished event ids for at
 * least EVENTS_DUPLICATE_WINDOW_MS. A PubAck from a stream that breaks these is no promise.
 */
export function streamProblem(info: StreamInfo, settings: StreamSettings): string | undefined {
  const config = info.config;
  const where = `Stream "${settings.name}"`;
  if (config.storage !== StorageType.File) {
    return `${where} keeps its messages in memory, not on disk; events wait in the outbox until it is recreated with file storage (nats stream rm ${settings.name}, then restart)`;
  }
  if (config.num_replicas !== settings.replicas) {
    return `${where} keeps ${config.num_replicas} copies, not the ${settings.replicas} of EVENTS_REPLICAS; events wait in the outbox until they match`;
  }
  if (config.duplicate_window < nanos(settings.duplicateWindowMs)) {
    return `${where} drops republished events for ${Math.round(config.duplicate_window / 1e6)} ms, less than EVENTS_DUPLICATE_WINDOW_MS (${settings.duplicateWindowMs}); events wait in the outbox until they match`;
  }
  return undefined;
}

/**
 * Creates the stream, or brings an existing one to the settings (limits, subjects); does nothing
 * when it already matches, so every replica and the worker may call it at every start. Two callers
 * racing to create it both end with the same stream. Throws a StreamSettingsError when the stream
 * cannot be what the settings ask (a stream in memory cannot be moved to disk in place).
 */
export async function ensureStream(nc: NatsConnection, settings: StreamSettings): Promise<StreamInfo> {
  const jsm = await nc.jetstreamManager();
  const wanted = streamConfig(settings);
  for (let attempt = 0; ; attempt++) {
    let info: StreamInfo | undefined;
    try {
      info = await jsm.streams.info(settings.name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    try {
      if (!info) info = await jsm.streams.add(wanted);
      else {
        const current = info.config;
        // JetStream cannot move a stream between memory and disk: say so rather than fail the update
        if (current.storage !== wanted.storage) throw new StreamSettingsError(streamProblem(info, settings) ?? '');
        const differs =
          COMPARED.some((key) => current[key] !== wanted[key]) || !sameSubjects(current.subjects, wanted.subjects);
        if (differs) info = await jsm.streams.update(settings.name, { ...current, ...wanted });
      }
      const problem = streamProblem(info, settings);
      if (problem) throw new StreamSettingsError(problem);
      return info;
    } catch (err) {
      // another process created or changed it between our look and our write: look again
      if (err instanceof StreamSettingsError || attempt >= 2) throw err;
    }
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { err_code?: number }; message?: string };
  return e.api_error?.err_code === 10059 || e.code === '404' || /stream not found/i.test(e.message ?? '');
}

/** Deletes the stream if it exists (tests clean up with it). */
export async function deleteStream(nc: NatsConnection, name: string): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await jsm.streams.delete(name).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
}
