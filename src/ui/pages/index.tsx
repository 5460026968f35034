/** The UI's pages in navigation order; `admin` pages are hidden from other users (the API refuses them anyway). */
import type { FunctionComponent } from 'preact';
import type { Me } from '../api.js';
import { Agents } from './agents.js';

export interface Page {
  readonly path: string;
  readonly title: string;
  readonly admin: boolean;
  readonly component: FunctionComponent<{ me: Me }>;
}

export const pages: readonly Page[] = [
  { path: '/ui/agents', title: 'Agents', admin: true, component: Agents },
];
