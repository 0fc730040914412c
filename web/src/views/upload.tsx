import { useState } from 'preact/hooks';
import { call } from '../api.ts';
import { Problem } from '../status.tsx';
import type { Image } from '../types.ts';
import type { Filters } from './images.tsx';

interface Result {
  name: string;
  image?: Image;
  created?: boolean;
  error?: unknown;
}

const DATASET = '[a-z0-9][a-z0-9._\\-]{0,63}';

/**
 * Drop images here (or choose them) to upload each with POST /images. The gallery shows new
 * images from the live feed, the same way it shows other people's uploads.
 */
export function UploadZone({ defaults }: { defaults: Filters }) {
  const [dataset, setDataset] = useState(defaults.dataset || 'uploads');
  const [label, setLabel] = useState(defaults.label);
  const [split, setSplit] = useState(defaults.split === 'none' ? '' : defaults.split);
  const [over, setOver] = useState(false);
  const [busy, setBusy] = useState(false);
  const [results, setResults] = useState<Result[]>([]);

  const upload = async (files: File[]) => {
    if (files.length === 0) return;
    setBusy(true);
    const done: Result[] = [];
    for (const file of files) {
      const form = new FormData();
      // the fields before the file, so the service has them when the bytes arrive
      form.append('dataset', dataset);
      if (label.trim()) form.append('label', label.trim());
      if (split) form.append('split', split);
      form.append('file', file, file.name);
      try {
        const { status, body } = await call<Image>('/images', { form });
        done.push({ name: file.name, image: body, created: status === 201 });
      } catch (error) {
        done.push({ name: file.name, error });
      }
      setResults([...done]);
    }
    setBusy(false);
  };

  return (
    <div class="card upload">
      <h2>Upload</h2>
      <div class="row">
        <label>
          Data set
          <input
            name="upload-dataset"
            value={dataset}
            pattern={DATASET}
            required
            onInput={(e) => setDataset(e.currentTarget.value)}
          />
        </label>
        <label>
          Label
          <input name="upload-label" value={label} maxLength={128} onInput={(e) => setLabel(e.currentTarget.value)} />
        </label>
        <label>
          Split
          <select name="upload-split" value={split} onChange={(e) => setSplit(e.currentTarget.value)}>
            <option value="">None</option>
            <option value="train">train</option>
            <option value="test">test</option>
            <option value="val">val</option>
          </select>
        </label>
      </div>
      {/* biome-ignore lint/a11y/noStaticElementInteractions: the drop target; the file input inside is the keyboard way */}
      <div
        class={`dropzone${over ? ' over' : ''}`}
        data-testid="dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          void upload([...(e.dataTransfer?.files ?? [])]);
        }}
      >
        <p>Drop images here, or</p>
        <label class="file">
          Choose images
          <input
            type="file"
            name="upload-files"
            accept="image/*"
            multiple
            disabled={busy}
            onChange={(e) => {
              const input = e.currentTarget;
              void upload([...(input.files ?? [])]).then(() => {
                input.value = '';
              });
            }}
          />
        </label>
      </div>
      {busy && (
        <p class="state loading" role="status">
          Uploading…
        </p>
      )}
      {results.length > 0 && (
        <ul class="results" aria-label="Uploads">
          {results.map((r, i) => (
            <li key={i}>
              {r.image ? (
                <span role="status">
                  {r.name}: {r.created ? 'stored' : 'already in this data set'} as{' '}
                  <a href={`#/images/${r.image.id}`}>{r.image.label ?? r.image.id.slice(0, 8)}</a>
                </span>
              ) : (
                <>
                  <span>{r.name}:</span> <Problem error={r.error} />
                </>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
