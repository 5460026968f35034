/** What the numbers were measured on: printed above every table. */
import os from 'node:os';
import { spawnSync } from 'node:child_process';

export function opensshVersion(): string {
  const r = spawnSync('ssh', ['-V'], { encoding: 'utf8' });
  return (r.stderr || r.stdout || '').trim().split(',')[0] ?? 'ssh ?';
}

export function machineLine(): string {
  const mem = (os.totalmem() / 2 ** 30).toFixed(1);
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? '?';
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  return `${os.availableParallelism()} CPUs (${cpu}), ${mem} GiB RAM, Linux ${os.release()}, Node ${process.version}, ${opensshVersion()}; load average at start ${load}`;
}
