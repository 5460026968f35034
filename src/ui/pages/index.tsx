/** The UI's pages in navigation order; `admin` pages are hidden from other users (the API refuses them anyway). */
import type { FunctionComponent } from 'preact';
import type { Me } from '../api.js';
import { Agents } from './agents.js';
import { AddAgent } from './addAgent.js';
import { Clusters } from './clusters.js';
import { MyAccess } from './myAccess.js';
import { AccessPage } from './access.js';
import { Audit } from './audit.js';
import { WebShell } from './shell.js';

export interface Page {
  readonly path: string;
  readonly title: string;
  readonly admin: boolean;
  /** False: reached from other pages' rows, not listed in the navigation. */
  readonly nav?: false;
  readonly component: FunctionComponent<{ me: Me }>;
}

export const pages: readonly Page[] = [
  { path: '/ui/agents', title: 'Agents', admin: true, component: Agents },
  { path: '/ui/add-agent', title: 'Add agent', admin: true, component: AddAgent },
  { path: '/ui/clusters', title: 'Clusters', admin: false, component: Clusters },
  { path: '/ui/me', title: 'My access', admin: false, component: MyAccess },
  { path: '/ui/access', title: 'Access', admin: true, component: AccessPage },
  { path: '/ui/audit', title: 'Audit', admin: false, component: Audit },
  { path: '/ui/shell', title: 'Web shell', admin: false, nav: false, component: WebShell },
];
