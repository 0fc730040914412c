import { useState } from 'preact/hooks';
import { getReadToken, getToken, setReadToken, setToken } from '../settings.ts';

/** One token field: hidden unless asked, with its hint. */
function TokenField(props: {
  id: string;
  label: string;
  value: string;
  hint: preact.ComponentChildren;
  onInput: (value: string) => void;
}) {
  const [show, setShow] = useState(false);
  const field = {
    id: props.id,
    name: props.id,
    autocomplete: 'off',
    spellcheck: false,
    value: props.value,
    'aria-describedby': `${props.id}-help`,
    onInput: (e: Event) => props.onInput((e.currentTarget as HTMLInputElement).value),
  };
  return (
    <>
      <label for={props.id}>{props.label}</label>
      {show ? <input type="text" {...field} /> : <input type="password" {...field} />}
      <label class="inline">
        <input type="checkbox" checked={show} onChange={(e) => setShow(e.currentTarget.checked)} /> Show the token
      </label>
      <p id={`${props.id}-help`} class="hint">
        {props.hint}
      </p>
    </>
  );
}

/** The API tokens for writes and, where the gateway asks for one, for reads; kept in this browser's localStorage. */
export function SettingsView() {
  const [token, setDraft] = useState(getToken());
  const [readToken, setReadDraft] = useState(getReadToken());
  const [saved, setSaved] = useState('');
  return (
    <section class="settings">
      <h1>Settings</h1>
      <form
        class="card stack"
        onSubmit={(e) => {
          e.preventDefault();
          setToken(token);
          setReadToken(readToken);
          const kept = [token.trim() && 'the API token', readToken.trim() && 'the token for reads'].filter(Boolean);
          setSaved(kept.length ? `Saved ${kept.join(' and ')} in this browser.` : 'Tokens removed from this browser.');
        }}
      >
        <TokenField
          id="token"
          label="API token"
          value={token}
          onInput={setDraft}
          hint={
            <>
              Adding jokes, counting, uploading and importing send it as <code>Authorization: Bearer …</code>. It is one
              of the gateway's <code>API_TOKENS</code> with the write scope; it stays in this browser (localStorage) and
              is sent only to this site.
            </>
          }
        />
        <TokenField
          id="read-token"
          label="Token for reads"
          value={readToken}
          onInput={setReadDraft}
          hint={
            <>
              Only needed when the gateway runs with <code>READS_REQUIRE_TOKEN</code>: use one with the read scope only
              (<code>read:…</code> in <code>API_TOKENS</code>). Images and the live feed carry it in their addresses (
              <code>?access_token=</code>), so never put your write token here.
            </>
          }
        />
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
