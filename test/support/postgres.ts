/**
 * A real PostgreSQL server for tests (Debian's `postgresql` package), in a throwaway data dir.
 *
 * The server runs in the foreground as the unprivileged `postgres` user (initdb and postgres refuse
 * root), with its unix socket in the data dir so several servers never share one. Roles connect over
 * TCP with a password (scram-sha-256), as a hub in production would.
 *
 * @module
 * @example
 *   const pg = await startPostgres({ group });
 *   after(() => pg.stop());
 *   await runHub({ store: pg.url });
 *   await pg.restart();                                    // a database restart under traffic
 *   const rows = await pg.psql('SELECT count(*) FROM audit');
 *
 *   // In a namespace, admitting one role from one source address only:
 *   await startPostgres({ group: lab.group, netns: lab.ns('external'), host: '10.9.0.2',
 *     hba: ['host app app 10.9.1.10/32 scram-sha-256'], roles: [{ name: 'app', password: 'pw' }] });
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atExit, type ChildGroup, run, runOk, waitForExit, waitForLine } from './proc.js';

const BIN = '/usr/lib/postgresql/15/bin';
const OS_USER = 'postgres';

export interface PostgresRole {
  name: string;
  password: string;
  /** A database of the same name, owned by the role, is created unless false. */
  database?: boolean;
}

export interface PostgresOptions {
  /** Owner of the server process (a `ChildGroup`, or `lab.group`). */
  group: ChildGroup;
  /** Network namespace to run in; default: this process's namespace. */
  netns?: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Port; default 5432 inside a namespace, else a random free one (retried if taken). */
  port?: number;
  /**
   * `host` lines of pg_hba.conf; default: every role from anywhere with a password. Local (unix
   * socket) connections by the `postgres` superuser are always trusted, for `psql()`.
   */
  hba?: string[];
  /** Roles to create; default one role `warren` with a random password and a database `warren`. */
  roles?: PostgresRole[];
  timeoutMs?: number;
}

export interface Postgres {
  host: string;
  port: number;
  dataDir: string;
  roles: PostgresRole[];
  /** `postgres://ROLE:PASSWORD@HOST:PORT/ROLE` for a role (default the first). */
  url(role?: string): string;
  /** Runs SQL as the superuser over the unix socket; returns psql's unaligned, tuples-only output. */
  psql(sql: string, database?: string): Promise<string>;
  /** A fast shutdown (clients are disconnected) and a start on the same data dir and port. */
  restart(): Promise<void>;
  /** Stops the server and removes the data dir. */
  stop(): Promise<void>;
  readonly child: ChildProcess;
}

export async function startPostgres(opts: PostgresOptions): Promise<Postgres> {
  const host = opts.host ?? '127.0.0.1';
  const roles = opts.roles ?? [{ name: 'warren', password: randomBytes(12).toString('hex') }];
  const dir = mkdtempSync(join(tmpdir(), 'warren-pg-'));
  const unhook = atExit(() => rmSync(dir, { recursive: true, force: true }));
  const uid = await idOf('-u');
  const gid = await idOf('-g');
  chownSync(dir, uid, gid);
  const dataDir = join(dir, 'data');
  const asPostgres = (cmd: string, args: string[]) => [
    'setpriv',
    ['--reuid', OS_USER, '--regid', OS_USER, '--init-groups', '--', join(BIN, cmd), ...args],
  ] as const;

  const [initCmd, initArgs] = asPostgres('initdb', ['-D', dataDir, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-sync']);
  await runOk(initCmd, initArgs, { timeoutMs: 60_000, cwd: dir });
  const hba = opts.hba ?? ['host all all 0.0.0.0/0 scram-sha-256'];
  writeFileSync(join(dataDir, 'pg_hba.conf'), ['local all postgres trust', ...hba, ''].join('\n'));

  let port = opts.port ?? 0;
  let child!: ChildProcess;
  const start = async (): Promise<void> => {
    const attempts = port !== 0 ? [port] : opts.netns ? [5432] : randomPorts(5);
    let lastError: unknown;
    for (const candidate of attempts) {
      const [cmd, args] = asPostgres('postgres', [
        '-D', dataDir, '-k', dir, '-h', host, '-p', String(candidate),
        // Tests restart the server under load: make that quick, and keep its log on stderr.
        '-c', 'fsync=off', '-c', 'logging_collector=off', '-c', 'max_connections=200',
      ]);
      child = opts.group.spawn(cmd, args, { netns: opts.netns, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        await waitForLine(child, /ready to accept connections/, { timeoutMs: opts.timeoutMs ?? 30_000, stream: 'stderr' });
        port = candidate;
        return;
      } catch (err) {
        await shutdown();
        lastError = err;
        if (String(err).includes('already in use')) continue;
        throw err;
      }
    }
    throw lastError;
  };
  // SIGINT is PostgreSQL's fast shutdown; the default SIGTERM would wait for every client to leave.
  const shutdown = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGINT');
    await waitForExit(child, 30_000);
  };

  const psql = async (sql: string, database = 'postgres'): Promise<string> => {
    const [cmd, args] = asPostgres('psql', ['-h', dir, '-p', String(port), '-U', 'postgres', '-d', database, '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql]);
    return (await runOk(cmd, args, { cwd: dir })).stdout.trim();
  };

  try {
    await start();
    for (const role of roles) {
      await psql(`CREATE ROLE "${role.name}" LOGIN PASSWORD '${role.password.replaceAll("'", "''")}'`);
      if (role.database !== false) await psql(`CREATE DATABASE "${role.name}" OWNER "${role.name}"`);
    }
  } catch (err) {
    await shutdown().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    unhook();
    throw err;
  }

  return {
    host,
    get port() {
      return port;
    },
    dataDir,
    roles,
    get child() {
      return child;
    },
    url(name = roles[0]!.name) {
      const role = roles.find((r) => r.name === name);
      if (!role) throw new Error(`postgres: no role ${name}`);
      return `postgres://${role.name}:${encodeURIComponent(role.password)}@${host}:${port}/${role.name}`;
    },
    psql,
    async restart() {
      await shutdown();
      await start();
    },
    async stop() {
      await shutdown().catch(() => opts.group.kill(child));
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
      unhook();
    },
  };
}

async function idOf(flag: '-u' | '-g'): Promise<number> {
  const result = await run('id', [flag, OS_USER]);
  if (result.code !== 0) {
    throw new Error(`postgres: no "${OS_USER}" system user; install Debian's postgresql package (scripts/install-deps.sh)`);
  }
  return Number(result.stdout.trim());
}

function randomPorts(n: number): number[] {
  return Array.from({ length: n }, () => 20_000 + Math.floor(Math.random() * 30_000));
}
