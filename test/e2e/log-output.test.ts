// What a person sees: on a terminal the agent logs one readable line per entry, in local time, and
// says in words that it joined, where, and what it can be reached as; JSON stays the default off a
// terminal; --log-format and WARREN_LOG_FORMAT choose explicitly. The terminal is a real pty
// (util-linux `script`), so the process itself decides by isatty(1), as it would under a person.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChildGroup, waitForLine } from '../support/proc.js';
import { joinToken, startHub, tempDir, WARREN_BIN, type HubProc } from '../support/warren.js';

/** A zone far from UTC with a half-hour offset, so a UTC time cannot pass for the local one by chance. */
const TZ = 'Asia/Kolkata';
const PRETTY_LINE = /^\[(\d{4}-\d\d-\d\d \d\d:\d\d):\d\d\.\d{3}\] (INFO|WARN|ERROR|DEBUG) \(agent\): (.*)$/;

/** Minutes around now, as the local clock in TZ shows them (`YYYY-MM-DD HH:MM`). */
function localMinutes(): string[] {
  const fmt = new Intl.DateTimeFormat('sv-SE', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return [-60_000, 0, 60_000].map((d) => fmt.format(new Date(Date.now() + d)));
}

const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('log output for people', () => {
  const procs = new ChildGroup();
  let hub: HubProc;

  before(async () => {
    hub = await startHub({ group: procs });
  });
  after(() => procs.killAll());

  /** `warren agent ARGS` with stdout on a pty; its output comes back through `script`'s stdout. */
  function agentOnTty(args: string[], env: NodeJS.ProcessEnv) {
    const command = [process.execPath, WARREN_BIN, 'agent', ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    return procs.spawn('script', ['--quiet', '--flush', '--return', '--command', command, '/dev/null'], { env: { ...process.env, TZ, ...env } });
  }

  it('on a terminal: readable lines in local time, and a "joined … reach it as …" line', { timeout: 60_000 }, async () => {
    const token = await joinToken(hub, ['--routes', '10.20.0.0/16']);
    const dataDir = tempDir('agent-tty');
    const child = agentOnTty(['--name', 'node1', '--data-dir', dataDir, '--route', '10.20.0.0/16'], { WARREN_JOIN_TOKEN: token, WARREN_LOG_LEVEL: 'info' });
    const [line] = await waitForLine(child, /^.*joined https:\/\/\S+ as node1;.*/, { timeoutMs: 30_000 });
    const text = stripAnsi(line.trim());
    const m = PRETTY_LINE.exec(text);
    assert.ok(m, `not one readable line: ${JSON.stringify(text)}`);
    assert.ok(localMinutes().includes(m[1]!), `time ${m[1]} is not the local time in ${TZ} (around ${localMinutes()[1]})`);
    assert.match(m[3]!, new RegExp(`^joined ${hub.url.replace(/[.]/g, '\\.')} as node1; reach it as node1:PORT, HOST\\.node1\\.warren:PORT or an address in 10\\.20\\.0\\.0/16`));
    assert.ok(!text.includes('{"level"'), 'a JSON line on a terminal');
    await procs.kill(child);

    // The same identity, a hub that is not there: it says why it waits, and for how long.
    const offline = agentOnTty(['--data-dir', dataDir, '--hub', 'https://127.0.0.1:1'], {});
    const [waiting] = await waitForLine(offline, /^.*waiting .*/, { timeoutMs: 30_000 });
    assert.match(stripAnsi(waiting), /WARN \(agent\): waiting \d+(ms|\.\ds) before dialling https:\/\/127\.0\.0\.1:1 again: cannot connect to hub 127\.0\.0\.1:1: connection refused/);
    await procs.kill(offline);
  });

  it('--log-format json on a terminal, WARREN_LOG_FORMAT=pretty off one; a bad value is refused at start', { timeout: 60_000 }, async () => {
    const token = await joinToken(hub);
    const dataDir = tempDir('agent-json');
    const json = agentOnTty(['--name', 'node2', '--data-dir', dataDir, '--log-format', 'json'], { WARREN_JOIN_TOKEN: token });
    const [line] = await waitForLine(json, /\{.*"msg":"joined [^"]*".*\}/, { timeoutMs: 30_000 });
    const entry = JSON.parse(line) as { name: string; msg: string; time: number };
    assert.equal(entry.name, 'agent');
    assert.match(entry.msg, /^joined https:\/\/\S+ as node2; reach it as node2:PORT or HOST\.node2\.warren:PORT$/);
    await procs.kill(json);

    // Off a terminal (a pipe) JSON is the default; the environment asks for readable lines instead.
    const pipe = procs.spawn(process.execPath, [WARREN_BIN, 'agent', '--data-dir', dataDir, '--hub', 'https://127.0.0.1:1'], { env: { ...process.env, TZ, WARREN_LOG_FORMAT: 'pretty' } });
    const [waiting] = await waitForLine(pipe, /^.*waiting .*/, { timeoutMs: 20_000, stream: 'stdout' });
    assert.match(waiting, PRETTY_LINE);
    assert.ok(!waiting.includes('\x1b['), 'colours in a pipe');
    await procs.kill(pipe);
    const bad = procs.spawn(process.execPath, [WARREN_BIN, 'agent', '--log-format', 'xml'], { env: process.env });
    const [refused] = await waitForLine(bad, /--log-format.*/, { timeoutMs: 20_000, stream: 'stderr' });
    assert.match(refused, /--log-format: must be json or pretty/);
  });
});
