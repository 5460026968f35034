/**
 * Data dirs hold keys, tokens and the store: readable by their owner only, whatever the umask. Files
 * are created 0600 (a mode the umask can only narrow) and chmod-ed, so a file left by an older version
 * or another tool with a wider mode is narrowed too.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Creates `dir` if missing and makes it and every regular file directly in it owner-only (0700/0600). */
export function makePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodIfOwned(dir, 0o700);
  // Sockets and subdirectories are left alone: a unix socket here may be meant for a group (--connect-uds).
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isFile()) chmodIfOwned(path.join(dir, entry.name), 0o600);
  }
}

/** Writes `data` to `file`, owner-only. */
export function writePrivateFile(file: string, data: string): void {
  fs.writeFileSync(file, data, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}

/**
 * A volume's mount point belongs to root in a pod (the agent's emptyDir, the hub's PVC with an fsGroup),
 * so a non-root process may not chmod it: that must not stop the process, and the files it writes there
 * are 0600 all the same.
 */
function chmodIfOwned(p: string, mode: number): void {
  try {
    fs.chmodSync(p, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
  }
}
