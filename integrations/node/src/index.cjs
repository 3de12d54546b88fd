'use strict'
// @dbsandbox/node: the sandbox URL of this test worker and a one-line reset before each test,
// for node --test, Jest and Vitest, with `pg` or `postgres` (whichever is installed).
//
// It works on top of `dbsandbox run -- <test command>`, which starts the server, builds the
// template from the migrations and exports DBSANDBOX_HOST / DBSANDBOX_PORT to the command.
// Zero runtime dependencies; the drivers are optional peer dependencies, loaded on first reset.

const path = require('node:path')
const { createRequire } = require('node:module')
const { pathToFileURL } = require('node:url')

/** The in-band statement that rolls a rollback sandbox back to the template's state. */
const RESET_STATEMENT = 'SELECT dbsandbox_reset()'

/** The URL query that gives a key database isolation (a whole clone with real commits). */
const DATABASE_ISOLATION_QUERY = '?options=-c%20dbsandbox.isolation%3Ddatabase'

/** What the proxy accepts as a key (the database name): 1 to 48 of A-Z a-z 0-9 _ - */
const KEY_PATTERN = /^[A-Za-z0-9_-]{1,48}$/

const NOT_RUNNING_MESSAGE =
  'dbsandbox: DBSANDBOX_PORT is not set, so these tests are not running under `dbsandbox run`. ' +
  'Start the test command through it, for example `dbsandbox run -- node --test` ' +
  '(or `dbsandbox run -- npx jest`, `dbsandbox run -- npx vitest run`); ' +
  'add `--migrations DIR` or a dbsandbox.toml for your schema. ' +
  '(Attaching to or starting a dbsandbox daemon on its own is not supported yet.)'

/** Thrown when the process was not started by `dbsandbox run` (DBSANDBOX_PORT is missing). */
class DbsandboxNotRunningError extends Error {
  constructor () {
    super(NOT_RUNNING_MESSAGE)
    this.name = 'DbsandboxNotRunningError'
    /** @type {'DBSANDBOX_NOT_RUNNING'} */
    this.code = 'DBSANDBOX_NOT_RUNNING'
  }
}

/**
 * The sandbox key of this test worker process, from the environment:
 * `DBSANDBOX_KEY` if set; Jest `JEST_WORKER_ID` -> `jest<id>`; Vitest `VITEST_POOL_ID`
 * (else `VITEST_WORKER_ID`) -> `vitest<id>`; a file run by the `node --test` runner
 * (`NODE_TEST_CONTEXT` is set: every test file runs in its own process) -> `node<pid>`;
 * otherwise `main`.
 *
 * @param {Record<string, string | undefined>} [env] defaults to process.env
 * @param {number} [pid] defaults to process.pid
 * @returns {string}
 */
function workerKey (env = process.env, pid = process.pid) {
  if (env.DBSANDBOX_KEY) return env.DBSANDBOX_KEY
  if (env.JEST_WORKER_ID) return `jest${env.JEST_WORKER_ID}`
  if (env.VITEST_POOL_ID) return `vitest${env.VITEST_POOL_ID}`
  if (env.VITEST_WORKER_ID) return `vitest${env.VITEST_WORKER_ID}`
  if (env.NODE_TEST_CONTEXT) return `node${pid}`
  return 'main'
}

/**
 * @typedef {object} SandboxUrlOptions
 * @property {string} [key] the sandbox key (the database name); default: workerKey(), with
 *   `-db` appended for `isolation: 'database'` (a key's first connection decides its isolation,
 *   so the database-isolation key must differ from the worker's rollback key)
 * @property {'rollback' | 'database'} [isolation] default `rollback` (whatever `dbsandbox run
 *   --isolation` says); `database` asks for a whole clone with real commits
 * @property {string} [user] user name in the URL (ignored by the proxy on loopback); default `dbsandbox`
 * @property {Record<string, string | undefined>} [env] defaults to process.env
 */

/**
 * The connection URL of a sandbox: `postgres://dbsandbox@DBSANDBOX_HOST:DBSANDBOX_PORT/KEY`.
 * Throws DbsandboxNotRunningError when not run under `dbsandbox run`.
 *
 * @param {SandboxUrlOptions} [options]
 * @returns {string}
 */
function sandboxUrl (options = {}) {
  const env = options.env || process.env
  const isolation = options.isolation || 'rollback'
  if (isolation !== 'rollback' && isolation !== 'database') {
    throw new TypeError(`dbsandbox: isolation must be 'rollback' or 'database', not ${JSON.stringify(isolation)}`)
  }
  const port = env.DBSANDBOX_PORT
  if (!port) throw new DbsandboxNotRunningError()
  const host = env.DBSANDBOX_HOST || '127.0.0.1'
  let key = options.key
  if (key === undefined || key === null || key === '') {
    key = workerKey(env)
    if (isolation === 'database') key = `${key}-db`
  }
  key = String(key)
  if (!KEY_PATTERN.test(key)) {
    throw new TypeError(
      `dbsandbox: bad sandbox key ${JSON.stringify(key)}: a key is 1 to 48 characters from A-Z a-z 0-9 _ -`
    )
  }
  const user = encodeURIComponent(options.user || 'dbsandbox')
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  const url = `postgres://${user}@${hostPart}:${port}/${key}`
  return isolation === 'database' ? url + DATABASE_ISOLATION_QUERY : url
}

/** @typedef {'pg' | 'postgres'} DriverName */

/**
 * Load a driver module: resolved from the current directory first (the project under test,
 * which matters when this package is installed as a symlink), then from this package.
 *
 * @param {DriverName} [only]
 * @returns {Promise<{ name: DriverName, mod: any }>}
 */
async function loadDriver (only) {
  if (only !== undefined && only !== 'pg' && only !== 'postgres') {
    throw new TypeError(`dbsandbox: driver must be 'pg' or 'postgres', not ${JSON.stringify(only)}`)
  }
  /** @type {DriverName[]} */
  const names = only ? [only] : ['pg', 'postgres']
  const requirers = [createRequire(path.join(process.cwd(), 'package.json')), require]
  for (const req of requirers) {
    for (const name of names) {
      let resolved
      try {
        resolved = req.resolve(name)
      } catch (err) {
        if (err && err.code === 'MODULE_NOT_FOUND') continue
        throw err
      }
      try {
        return { name, mod: req(resolved) }
      } catch (err) {
        if (!err || err.code !== 'ERR_REQUIRE_ESM') throw err
        const ns = await import(pathToFileURL(resolved).href)
        return { name, mod: ns.default || ns }
      }
    }
  }
  throw new Error(
    `dbsandbox: cannot reset the sandbox: no PostgreSQL driver found (${names.join(' or ')}). ` +
      'Install one in your project: `npm install --save-dev pg` or `npm install --save-dev postgres`.'
  )
}

function explainResetError (err, url) {
  if (err && err.code === '42883') {
    const wrapped = new Error(
      `dbsandbox: ${RESET_STATEMENT} is not known on ${url}: this key has database isolation ` +
        '(a whole clone with real commits), which cannot be reset in-band. ' +
        'Give each test its own key (sandboxUrl({ isolation: "database", key })) or run `dbsandbox release KEY`.'
    )
    wrapped.code = err.code
    wrapped.cause = err
    return wrapped
  }
  return err
}

/**
 * @typedef {object} ResetOptions
 * @property {DriverName} [driver] which driver to use; default: `pg` if installed, else `postgres`
 */

/**
 * Roll a rollback sandbox back to the template's state (rows, sequences, locks, session state),
 * by running `SELECT dbsandbox_reset()` on a new connection that is closed afterwards.
 * Every connection of the key sees the reset; open connections stay usable.
 *
 * @param {string} [url] default: sandboxUrl()
 * @param {ResetOptions} [options]
 * @returns {Promise<void>}
 */
async function resetSandbox (url, options = {}) {
  if (url === undefined || url === null) url = sandboxUrl()
  const { name, mod } = await loadDriver(options.driver)
  if (name === 'pg') {
    const Client = mod.Client || (mod.default && mod.default.Client)
    const client = new Client({ connectionString: url })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.query(RESET_STATEMENT)
    } catch (err) {
      throw explainResetError(err, url)
    } finally {
      await client.end().catch(() => {})
    }
  } else {
    const postgres = typeof mod === 'function' ? mod : mod.default
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      await sql.unsafe(RESET_STATEMENT)
    } catch (err) {
      throw explainResetError(err, url)
    } finally {
      await sql.end({ timeout: 5 }).catch(() => {})
    }
  }
}

/**
 * @typedef {object} SetupHooks
 * @property {(fn: () => Promise<void>) => unknown} beforeEach the framework's beforeEach
 *   (node:test's, Jest's or Vitest's)
 */

/**
 * @typedef {object} SetupOptions
 * @property {string} [key] default: workerKey()
 * @property {DriverName} [driver] default: `pg` if installed, else `postgres`
 */

/**
 * The one line: register a beforeEach that resets this worker's rollback sandbox, and get its URL.
 *
 *     import { beforeEach } from 'node:test'   // Jest / Vitest: their beforeEach
 *     const url = setup({ beforeEach })
 *
 * @param {SetupHooks} hooks
 * @param {SetupOptions} [options]
 * @returns {string} the sandbox URL the tests should connect to
 */
function setup (hooks, options = {}) {
  if (!hooks || typeof hooks.beforeEach !== 'function') {
    throw new TypeError(
      "dbsandbox: setup() needs the test framework's beforeEach: setup({ beforeEach }) " +
        "(from 'node:test', Jest's global, or 'vitest')"
    )
  }
  if (options.isolation && options.isolation !== 'rollback') {
    throw new TypeError(
      'dbsandbox: setup() resets rollback sandboxes; a database-isolation key cannot be reset in-band ' +
        '(use sandboxUrl({ isolation: "database", key }) with a key of its own)'
    )
  }
  const url = sandboxUrl({ key: options.key })
  const driver = options.driver
  hooks.beforeEach(async function dbsandboxReset () {
    await resetSandbox(url, { driver })
  })
  return url
}

module.exports = {
  sandboxUrl,
  resetSandbox,
  setup,
  workerKey,
  DbsandboxNotRunningError,
  RESET_STATEMENT,
  DATABASE_ISOLATION_QUERY,
  NOT_RUNNING_MESSAGE
}
