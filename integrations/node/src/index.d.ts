// Types of @dbsandbox/node (the implementation is plain JS with JSDoc: src/index.cjs).

export type Isolation = 'rollback' | 'database'
export type DriverName = 'pg' | 'postgres'

export interface SandboxOptions {
  /** The sandbox key (database name): 1-48 of A-Z a-z 0-9 _ -. Default: workerKey() (+ `-db` for database isolation). */
  key?: string
  /** Default: the daemon's (rollback); `database` gives the key a whole clone with real commits. */
  isolation?: Isolation
}

export interface ResetOptions {
  /** Reset in-band with this driver (`SELECT dbsandbox_reset()`) instead of through the daemon. */
  driver?: DriverName
}

export interface SetupHooks {
  beforeEach: (fn: () => Promise<void>) => unknown
  /** node:test's `after`: release the sandbox after the file's last test. */
  after?: (fn: () => Promise<void>) => unknown
  /** Jest's / Vitest's `afterAll`: release the sandbox after the file's last test. */
  afterAll?: (fn: () => Promise<void>) => unknown
}

export interface Daemon {
  api: string
  token: string | null
  run: string | null
  origin: string
  info: ServeDetachInfo | null
}

export interface ServeDetachInfo {
  api: string
  token: string | null
  proxy: string
  pid: number
  project: string
  started: boolean
}

export interface SandboxStats {
  connections_open: number
  connections_total: number
  statements: number
  commits_absorbed: number
  errors_recovered: number
  resets: number
}

export interface SandboxInfo {
  key: string
  isolation: Isolation
  url: string
  database: string
  run: string | null
  owner_pid: number | null
  stats: SandboxStats
  tables: { table: string, rows: number }[] | null
}

export declare class Sandbox {
  readonly key: string
  readonly url: string
  readonly isolation: Isolation
  readonly run: string | null
  readonly daemon: Daemon
  readonly data: SandboxInfo
  released: boolean
  reset(): Promise<void>
  info(): Promise<SandboxInfo>
  release(): Promise<void>
  releaseSync(): void
}

export declare function sandboxUrl(options?: SandboxOptions): string
export declare function resetSandbox(url?: string | Sandbox, options?: ResetOptions): Promise<void>
export declare function setup(hooks: SetupHooks, options?: SandboxOptions): string
export declare function workerKey(env?: Record<string, string | undefined>, pid?: number): string
export declare function acquireSandbox(options?: SandboxOptions): Promise<Sandbox>
export declare function acquireSandboxSync(options?: SandboxOptions): Sandbox
export declare function releaseAll(): Promise<void>
export declare function daemon(options?: { cwd?: string, env?: Record<string, string | undefined>, refresh?: boolean }): Daemon
export declare function startOrAttach(options?: { cwd?: string, env?: Record<string, string | undefined> }): ServeDetachInfo
export declare function findBinary(env?: Record<string, string | undefined>): string

export declare class DbsandboxError extends Error {
  code: string
}
export declare class DbsandboxNotRunningError extends DbsandboxError {
  name: 'DbsandboxNotRunningError'
  code: 'DBSANDBOX_NOT_RUNNING'
}
export declare class DbsandboxStartError extends DbsandboxError {
  name: 'DbsandboxStartError'
  code: 'DBSANDBOX_START_FAILED'
  stderr: string
}
export declare class DbsandboxApiError extends DbsandboxError {
  name: 'DbsandboxApiError'
  code: 'DBSANDBOX_API_ERROR'
  method: string
  path: string
  status: number
  /** `bad_request`, `invalid_key`, `unauthorized`, `not_found`, `key_in_use`, `unavailable`, `internal`, ... */
  apiCode: string
  apiMessage: string
}

export declare const RESET_STATEMENT: 'SELECT dbsandbox_reset()'
export declare const NOT_RUNNING_MESSAGE: string
/** The control API version this helper speaks; a daemon reporting another is refused. */
export declare const API_VERSION: number
/** The package that carries the binary for this platform, e.g. `@dbsandbox/linux-x64`. */
export declare const PLATFORM_PACKAGE: string

declare const dbsandbox: {
  sandboxUrl: typeof sandboxUrl
  resetSandbox: typeof resetSandbox
  setup: typeof setup
  workerKey: typeof workerKey
  acquireSandbox: typeof acquireSandbox
  acquireSandboxSync: typeof acquireSandboxSync
  releaseAll: typeof releaseAll
  daemon: typeof daemon
  startOrAttach: typeof startOrAttach
  findBinary: typeof findBinary
  Sandbox: typeof Sandbox
  DbsandboxError: typeof DbsandboxError
  DbsandboxNotRunningError: typeof DbsandboxNotRunningError
  DbsandboxStartError: typeof DbsandboxStartError
  DbsandboxApiError: typeof DbsandboxApiError
  RESET_STATEMENT: typeof RESET_STATEMENT
  NOT_RUNNING_MESSAGE: typeof NOT_RUNNING_MESSAGE
}
export default dbsandbox
