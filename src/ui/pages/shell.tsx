/**
 * Web shell: a terminal (xterm.js) to a node's sshd through its agent. The login and the password or
 * private key go to the hub once, in the WebSocket's start message, for this one SSH login; the page
 * forgets them as soon as it has sent them. Opened from a node's row (My access, Agents) as
 * /ui/shell?target=HOST:PORT.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { ApiError, csrfToken } from '../api.js';
import { ErrorBox, Field } from '../components.js';

type State = { kind: 'form' } | { kind: 'connecting' } | { kind: 'open'; agent: string; target: string; hostKey: string } | { kind: 'ended'; reason: string };

/** The page's address for a shell to `target` (HOST:PORT). */
export function shellHref(target: string): string {
  return `/ui/shell?target=${encodeURIComponent(target)}`;
}

export function WebShell() {
  const [target, setTarget] = useState(() => new URLSearchParams(location.search).get('target') ?? '');
  const [login, setLogin] = useState('');
  const [method, setMethod] = useState<'password' | 'key'>('password');
  const [password, setPassword] = useState('');
  const [privateKey, setPrivateKey] = useState('');
  const [passphrase, setPassphrase] = useState('');
  const [hostKey, setHostKey] = useState('');
  const [state, setState] = useState<State>({ kind: 'form' });
  const [error, setError] = useState<unknown>();
  const termBox = useRef<HTMLDivElement>(null);
  const socket = useRef<WebSocket | undefined>(undefined);
  /** Set when the user disconnects, so the close is not reported as a failure. */
  const leaving = useRef(false);
  const term = useRef<{ terminal: Terminal; fit: FitAddon } | undefined>(undefined);

  // One terminal for the page's life; the WebSocket comes and goes with each session.
  useEffect(() => {
    const terminal = new Terminal({ cursorBlink: true, fontFamily: 'ui-monospace, monospace', fontSize: 14, scrollback: 5000 });
    const fit = new FitAddon();
    terminal.loadAddon(fit);
    terminal.open(termBox.current!);
    fit.fit();
    term.current = { terminal, fit };
    const encoder = new TextEncoder();
    const onData = terminal.onData((d) => socket.current?.readyState === WebSocket.OPEN && socket.current.send(encoder.encode(d)));
    const onResize = terminal.onResize(({ cols, rows }) => socket.current?.readyState === WebSocket.OPEN && socket.current.send(JSON.stringify({ type: 'resize', cols, rows })));
    const refit = () => fit.fit();
    addEventListener('resize', refit);
    return () => {
      removeEventListener('resize', refit);
      onData.dispose();
      onResize.dispose();
      socket.current?.close();
      terminal.dispose();
    };
  }, []);

  const connect = (e: Event) => {
    e.preventDefault();
    const t = term.current!;
    setError(undefined);
    setState({ kind: 'connecting' });
    t.terminal.reset();
    t.fit.fit();
    const start = {
      type: 'start', csrf: csrfToken(), target: target.trim(), login: login.trim(), cols: t.terminal.cols, rows: t.terminal.rows,
      ...(method === 'password' ? { password } : { privateKey, ...(passphrase ? { passphrase } : {}) }),
      ...(hostKey.trim() ? { hostKey: hostKey.trim() } : {}),
    };
    // Sent once, then forgotten by the page.
    setPassword('');
    setPrivateKey('');
    setPassphrase('');
    const ws = new WebSocket(`wss://${location.host}/ui/shell`);
    ws.binaryType = 'arraybuffer';
    leaving.current = false;
    socket.current = ws;
    let ended = false;
    ws.onopen = () => ws.send(JSON.stringify(start));
    ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => {
      if (typeof m.data !== 'string') {
        t.terminal.write(new Uint8Array(m.data));
        return;
      }
      const msg = JSON.parse(m.data) as { type: string; agent?: string; target?: string; hostKey?: string; code?: string; message?: string; reason?: string };
      if (msg.type === 'ready') {
        setState({ kind: 'open', agent: msg.agent ?? '', target: msg.target ?? '', hostKey: msg.hostKey ?? '' });
        t.terminal.focus();
      } else if (msg.type === 'error') {
        ended = true;
        setError(new ApiError(0, msg.code ?? 'WARREN_E_INTERNAL', msg.message ?? 'the web shell failed'));
        setState({ kind: 'form' });
      } else if (msg.type === 'end') {
        ended = true;
        setState({ kind: 'ended', reason: msg.reason ?? 'closed' });
      }
    };
    ws.onclose = (ev) => {
      if (socket.current === ws) socket.current = undefined;
      if (ended) return;
      if (leaving.current) {
        setState({ kind: 'ended', reason: 'disconnected' });
        return;
      }
      // Refused before the WebSocket opened (no session, foreign origin): the browser gives no body.
      setError(new ApiError(0, 'WARREN_E_UNAVAILABLE', `the web shell connection closed (${ev.code}); reload the page and sign in again if needed`));
      setState({ kind: 'form' });
    };
  };

  const busy = state.kind === 'connecting' || state.kind === 'open';
  return (
    <section>
      <form onSubmit={connect} aria-label="Open a web shell">
        <Field label="Target" hint="HOST:PORT of the node's sshd, as in your grants (e.g. node1:22)">
          <input name="target" required value={target} disabled={busy} onInput={(e) => setTarget(e.currentTarget.value)} />
        </Field>
        <Field label="Login">
          <input name="login" required autoComplete="off" autoCapitalize="off" value={login} disabled={busy} onInput={(e) => setLogin(e.currentTarget.value)} />
        </Field>
        <fieldset disabled={busy}>
          <legend>Authentication</legend>
          <label class="checkbox">
            <input type="radio" name="method" value="password" checked={method === 'password'} onChange={() => setMethod('password')} />
            Password
          </label>
          <label class="checkbox">
            <input type="radio" name="method" value="key" checked={method === 'key'} onChange={() => setMethod('key')} />
            Private key
          </label>
        </fieldset>
        {method === 'password' ? (
          <Field label="SSH password" hint="Sent to the node's sshd for this login only; never stored.">
            <input type="password" name="password" autoComplete="off" value={password} disabled={busy} onInput={(e) => setPassword(e.currentTarget.value)} />
          </Field>
        ) : (
          <>
            <Field label="SSH private key" hint="OpenSSH or PEM. Sent to the hub for this login only; never stored.">
              <textarea name="privateKey" autoComplete="off" spellcheck={false} value={privateKey} disabled={busy} onInput={(e) => setPrivateKey(e.currentTarget.value)} />
            </Field>
            <Field label="Key passphrase" hint="Only if the key is encrypted.">
              <input type="password" name="passphrase" autoComplete="off" value={passphrase} disabled={busy} onInput={(e) => setPassphrase(e.currentTarget.value)} />
            </Field>
          </>
        )}
        <Field label="Host key fingerprint (optional)" hint="SHA256:… as `ssh-keygen -lf` prints it: the hub refuses a node whose key differs.">
          <input name="hostKey" autoComplete="off" value={hostKey} disabled={busy} onInput={(e) => setHostKey(e.currentTarget.value)} />
        </Field>
        {busy ? (
          <button type="button" onClick={() => ((leaving.current = true), socket.current?.close())}>
            Disconnect
          </button>
        ) : (
          <button type="submit">Connect</button>
        )}
      </form>
      <ErrorBox error={error} />
      <p role="status" data-testid="shell-status">
        {state.kind === 'connecting'
          ? 'Connecting…'
          : state.kind === 'open'
            ? `Connected to ${state.target} through agent ${state.agent} · host key ${state.hostKey}`
            : state.kind === 'ended'
              ? `Session ended: ${state.reason}`
              : ''}
      </p>
      <div class="terminal" ref={termBox} role="region" aria-label="Terminal" data-testid="terminal" />
    </section>
  );
}
