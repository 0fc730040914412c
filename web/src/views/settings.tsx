import { useState } from 'preact/hooks';
import { getToken, setToken } from '../settings.ts';

/** The API token for writes, kept in this browser's localStorage. */
export function SettingsView() {
  const [token, setDraft] = useState(getToken());
  const [show, setShow] = useState(false);
  const [saved, setSaved] = useState('');
  const field = {
    id: 'token',
    name: 'token',
    autocomplete: 'off',
    spellcheck: false,
    value: token,
    'aria-describedby': 'token-help',
    onInput: (e: Event) => setDraft((e.currentTarget as HTMLInputElement).value),
  };
  return (
    <section class="settings">
      <h1>Settings</h1>
      <form
        class="card stack"
        onSubmit={(e) => {
          e.preventDefault();
          setToken(token);
          setSaved(token.trim() ? 'Token saved in this browser.' : 'Token removed from this browser.');
        }}
      >
        <label for="token">API token</label>
        {show ? <input type="text" {...field} /> : <input type="password" {...field} />}
        <label class="inline">
          <input type="checkbox" checked={show} onChange={(e) => setShow(e.currentTarget.checked)} /> Show the token
        </label>
        <p id="token-help" class="hint">
          Reading needs no token. Adding jokes, counting, uploading and importing send it as{' '}
          <code>Authorization: Bearer …</code>. It is one of the gateway's <code>API_TOKENS</code>; it stays in this
          browser (localStorage) and is sent only to this site.
        </p>
        <div>
          <button type="submit">Save</button>
        </div>
        {saved && (
          <p class="ok" role="status">
            {saved}
          </p>
        )}
      </form>
    </section>
  );
}
