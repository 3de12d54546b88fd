// Types of @dbsandbox/node (the implementation is plain JS with JSDoc: src/index.cjs).

export type Isolation = 'rollback' | 'database'
export type DriverName = 'pg' | 'postgres'

export interface SandboxUrlOptions {
  /** The sandbox key (database name): 1-48 of A-Z a-z 0-9 _ -. Default: workerKey() (+ `-db` for database isolation). */
  key?: string
  /** Default `rollback`; `database` gives the key a whole clone with real commits. */
  isolation?: Isolation
  /** User name in the URL (ignored by the proxy on loopback). Default `dbsandbox`. */
  user?: string
  /** Default: process.env */
  env?: Record<string, string | undefined>
}

export interface ResetOptions {
  /** Default: `pg` if installed, else `postgres`. */
  driver?: DriverName
}

export interface SetupHooks {
  beforeEach: (fn: () => Promise<void>) => unknown
}

export interface SetupOptions {
  key?: string
  driver?: DriverName
}

export declare function sandboxUrl(options?: SandboxUrlOptions): string
export declare function resetSandbox(url?: string, options?: ResetOptions): Promise<void>
export declare function setup(hooks: SetupHooks, options?: SetupOptions): string
export declare function workerKey(env?: Record<string, string | undefined>, pid?: number): string

export declare class DbsandboxNotRunningError extends Error {
  name: 'DbsandboxNotRunningError'
  code: 'DBSANDBOX_NOT_RUNNING'
}

export declare const RESET_STATEMENT: 'SELECT dbsandbox_reset()'
export declare const DATABASE_ISOLATION_QUERY: string
export declare const NOT_RUNNING_MESSAGE: string

declare const dbsandbox: {
  sandboxUrl: typeof sandboxUrl
  resetSandbox: typeof resetSandbox
  setup: typeof setup
  workerKey: typeof workerKey
  DbsandboxNotRunningError: typeof DbsandboxNotRunningError
  RESET_STATEMENT: typeof RESET_STATEMENT
  DATABASE_ISOLATION_QUERY: typeof DATABASE_ISOLATION_QUERY
  NOT_RUNNING_MESSAGE: typeof NOT_RUNNING_MESSAGE
}
export default dbsandbox
