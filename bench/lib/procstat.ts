/**
 * CPU time and memory of processes, read from /proc (Linux only): what the table's "CPU s/GiB" and
 * "RSS" columns are made of.
 */
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/PID/stat (100 on every Linux we know, but ask). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

function statFields(pid: number): string[] | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds a process has used so far (0 when it is gone). */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  if (!f) return 0;
  // After the ')' field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
}

/** Resident set size in bytes (VmRSS), 0 when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The parts of VmRSS in bytes: anonymous memory (heaps, malloc), file mappings, shared memory; zeros when the process is gone. */
export function rssParts(pid: number): { anon: number; file: number; shmem: number } {
  let status = '';
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone: zeros
  }
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile'), shmem: kb('RssShmem') };
}

function parentOf(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? Number(f[1]) : undefined;
}

/** `pid` and all its live descendants (sshd forks per connection; its sessions are what work). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = parentOf(Number(name));
    if (ppid === undefined) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** A set of processes whose CPU and RSS are summed; `tree` includes descendants found at each read. */
export class ProcessGroupStat {
  constructor(
    private readonly roots: readonly number[],
    private readonly tree = false,
  ) {}

  pids(): number[] {
    return this.tree ? this.roots.flatMap((p) => processTree(p)) : [...this.roots];
  }

  /** CPU seconds per pid, so a delta only counts processes alive at both reads. */
  cpu(): Map<number, number> {
    return new Map(this.pids().map((p) => [p, cpuSeconds(p)]));
  }

  rss(): number {
    return this.pids().reduce((sum, p) => sum + rssBytes(p), 0);
  }
}

export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, t] of after) total += t - (before.get(pid) ?? 0);
  return total;
}
