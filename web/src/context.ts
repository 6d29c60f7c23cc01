import type { Api, Info } from './api.ts';
import type { Session } from './session.ts';

/** What every page is given. */
export interface AppContext {
  readonly api: Api;
  readonly session: Session;
  readonly info: Info;
  /** The registry as clients name it: this page's host. */
  readonly host: string;
}
