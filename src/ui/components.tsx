/** Small building blocks shared by the pages: errors, copyable command lines, a two-step delete. */
import { useId, useRef, useState } from 'preact/hooks';
import { cloneElement, isValidElement, type ComponentChildren } from 'preact';
import { errorText } from './api.js';

export function ErrorBox({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

/** A command in a code box with a Copy button (the clipboard when the browser allows it). */
export function CopyLine({ text, label }: { text: string; label: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'selected'>('idle');
  const code = useRef<HTMLElement>(null);
  // Without clipboard access (plain http, a denied permission) the text is selected for Ctrl+C instead.
  const selectText = () => {
    const range = document.createRange();
    range.selectNodeContents(code.current!);
    getSelection()?.removeAllRanges();
    getSelection()?.addRange(range);
    setState('selected');
  };
  const copy = () => void navigator.clipboard.writeText(text).then(() => setState('copied'), selectText);
  return (
    <div class="copyline">
      <code ref={code} aria-label={label}>
        {text}
      </code>
      <button type="button" onClick={copy} aria-label={`Copy ${label}`}>
        {state === 'copied' ? 'Copied' : state === 'selected' ? 'Press Ctrl+C' : 'Copy'}
      </button>
    </div>
  );
}

/** A button that asks once more before doing something that cannot be undone. */
export function ConfirmButton({ label, what, onConfirm }: { label: string; what: string; onConfirm: () => Promise<void> }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!asking) {
    return (
      <button type="button" class="danger" aria-label={`${label} ${what}`} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span class="confirm">
      <button
        type="button"
        class="danger"
        disabled={busy}
        aria-label={`Confirm: ${label} ${what}`}
        onClick={() => {
          setBusy(true);
          void onConfirm().finally(() => (setBusy(false), setAsking(false)));
        }}
      >
        Confirm
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

/** A table that scrolls sideways on narrow screens instead of overflowing the page. */
export function Table({ caption, head, children }: { caption: string; head: readonly string[]; children: ComponentChildren }) {
  return (
    <div class="tablewrap" tabIndex={0} role="region" aria-label={caption}>
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            {head.map((h) => (
              <th scope="col" key={h}>
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/**
 * A labelled form control. The label alone is the control's accessible name; the hint is its
 * description (aria-describedby), so a screen reader reads both and `getByLabel` finds the label.
 */
export function Field({ label, children, hint }: { label: string; children: ComponentChildren; hint?: string }) {
  const hintId = useId();
  const control = hint && isValidElement(children) ? cloneElement(children, { 'aria-describedby': hintId }) : children;
  return (
    <div class="field">
      <label>
        <span>{label}</span>
        {control}
      </label>
      {hint ? <small id={hintId}>{hint}</small> : null}
    </div>
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]!}`;
}

/** `a, b, c` for lists; an em dash for none. */
export function list(items: readonly string[] | undefined): string {
  return items && items.length ? items.join(', ') : '—';
}
