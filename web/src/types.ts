/** An image's metadata as GET /images/:id serves it. */
export interface Image {
  id: string;
  dataset: string;
  label: string | null;
  split: string | null;
  tags: string[];
  sha256: string;
  format: string;
  contentType: string;
  width: number;
  height: number;
  channels: number;
  bytes: number;
  filename: string | null;
  createdAt: string;
  updatedAt: string;
  fileUrl: string;
}

/** A keyset page of the API. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Counts per split. */
export interface SplitCounts {
  train: number;
  test: number;
  val: number;
  none: number;
}

/** One data set as GET /images/datasets lists it. */
export interface Dataset {
  name: string;
  count: number;
  bytes: number;
  labels: number;
  splits: SplitCounts;
}

/** One label as GET /images/labels lists it. */
export interface LabelCount {
  label: string | null;
  count: number;
  splits: SplitCounts;
}

/** An import job. */
export interface ImportJob {
  id: string;
  dataset: string;
  split: string | null;
  format: string | null;
  status: 'queued' | 'running' | 'completed' | 'failed' | 'interrupted';
  total: number | null;
  processed: number;
  imported: number;
  duplicates: number;
  failed: number;
  errors: { record: string; message: string }[];
  message: string | null;
}

/** A joke. */
export interface Joke {
  id: number;
  joke: string;
  category: string;
  lang: string;
  flags: string[];
}

/** An event of the images stream (see the events contract). */
export interface ImageEvent {
  id: string;
  type: 'created' | 'updated' | 'deleted';
  occurredAt: string;
  dataset: string;
  imageId: string;
  image: Image;
}
