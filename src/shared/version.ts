import { readFileSync } from 'node:fs';

/** Warren's version, from package.json (two levels above src/shared/ and dist/shared/). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
