/** Opens the store the hub's config names: the SQLite file, or the shared PostgreSQL database. */
import type { Logger } from '../shared/log.js';
import { PostgresStore } from './postgresStore.js';
import { SqliteStore } from './sqliteStore.js';
import type { Store, StoreLocation } from './store.js';

export async function openStore(where: StoreLocation, log: Logger): Promise<Store> {
  if (where.kind === 'sqlite') return new SqliteStore(where.path);
  return PostgresStore.open(where, log);
}
