/**
 * One hub per data dir: `hub.lock` holds the pid of the hub using it. Two hubs on one dir would share
 * the SQLite file, the CA key and admin.token and trip over each other; the second is refused at start.
 * A lock whose process is gone (a crash, a kill -9) is stale and taken over; so is one holding our own
 * pid (a container restarts its hub as pid 1 again).
 */
import fs from 'node:fs';
import path from 'node:path';
import { WarrenError } from '../shared/errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the data dir's lock or throws WARREN_E_CONFIG naming the hub that holds it; returns the release function. */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, 'hub.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const holder = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new WarrenError('WARREN_E_CONFIG', `another hub (pid ${holder}) is using the data dir ${dataDir}: stop it first, or give this hub its own --data-dir (hubs that share state use --store postgres://…)`);
      }
      fs.rmSync(file, { force: true });
    }
  }
  return () => {
    if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true });
  };
}
