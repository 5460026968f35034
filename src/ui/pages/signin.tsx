/** Sign-in: an access token (from `warren token create` or the hub's admin.token) becomes a session cookie. */
import { useState } from 'preact/hooks';
import { call, type Me } from '../api.js';
import { ErrorBox, Field } from '../components.js';

export function SignIn({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    call<Me>('POST', '/ui/session', { token: token.trim() }).then(
      (me) => {
        setToken('');
        onSignedIn(me);
      },
      (err: unknown) => (setError(err), setBusy(false)),
    );
  };
  return (
    <main class="signin">
      <h1>Warren</h1>
      <form onSubmit={submit}>
        <Field label="Access token" hint="From `warren token create`, or admin.token in the hub's data directory.">
          <input type="password" name="token" autoComplete="off" required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
        </Field>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        <ErrorBox error={error} />
      </form>
    </main>
  );
}
