'use strict'
// @dbsandbox/node: a sandbox per test worker and a one-line reset before each test, for
// node --test, Jest and Vitest, with `pg` or `postgres` (or any client that takes a URL).
//
// The sandbox comes from the dbsandbox daemon's HTTP API (crates/dbsandbox-control/API.md):
//   - under `dbsandbox run`, DBSANDBOX_URL and DBSANDBOX_RUN are set: that daemon, that run;
//   - otherwise `$DBSANDBOX_BIN serve --detach` (else the binary of the platform package
//     @dbsandbox/<os>-<cpu>, an optional dependency, else `dbsandbox` on PATH) in the current
//     directory attaches to the project's daemon or starts one (once per process).
// Either way the daemon's control API version (api_version) must be API_VERSION.
// POST /v1/sandboxes acquires the worker's key (owner_pid = this process), POST .../reset resets
// it before each test, DELETE releases it at the end. Zero runtime dependencies: node:http only;
// the drivers are optional peer dependencies, used only by the in-band reset helper.

const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { createRequire } = require('node:module')
const { pathToFileURL } = require('node:url')
const { httpRequest } = require('./http.cjs')

/** The in-band statement that rolls a rollback sandbox back to the template's state. */
const RESET_STATEMENT = 'SELECT dbsandbox_reset()'

/** What a key may be: 1 to 48 of A-Z a-z 0-9 _ - */
const KEY_PATTERN = /^[A-Za-z0-9_-]{1,48}$/

const ISOLATIONS = ['rollback', 'database']
const DEFAULT_START_TIMEOUT_SECONDS = 600
const REQUEST_TIMEOUT_MS = 120000
const HTTP_CHILD = path.join(__dirname, 'http.cjs')
/** The control API version this helper speaks (`api_version` in GET /v1/health). */
const API_VERSION = 1
/** The package carrying the binary for this platform (esbuild's pattern), e.g. @dbsandbox/linux-x64. */
const PLATFORM_PACKAGE = `@dbsandbox/${process.platform}-${process.arch}`

const NOT_RUNNING_MESSAGE =
  'dbsandbox: no dbsandbox daemon to use: DBSANDBOX_URL is not set and `dbsandbox` is not on PATH ' +
  `(nor DBSANDBOX_BIN set, nor ${PLATFORM_PACKAGE} installed), so it cannot be started. ` +
  `\`npm install ${PLATFORM_PACKAGE}\` installs it (@dbsandbox/node brings it as an optional dependency ` +
  'on the platforms it is built for). Or put the dbsandbox binary on PATH ' +
  '(or set DBSANDBOX_BIN=/path/to/dbsandbox): the tests then start or attach to the project\'s ' +
  'daemon themselves; or run them under it: `dbsandbox run -- node --test` ' +
  '(`dbsandbox run -- npx jest`, `dbsandbox run -- npx vitest run`).'

/** Base class of this package's errors; `code` says which problem it is. */
class DbsandboxError extends Error {
  constructor (message, code) {
    super(message)
    this.name = 'DbsandboxError'
    this.code = code || 'DBSANDBOX_ERROR'
  }
}

/** No DBSANDBOX_URL and no dbsandbox binary to start a daemon with. */
class DbsandboxNotRunningError extends DbsandboxError {
  constructor (message) {
    super(message || NOT_RUNNING_MESSAGE, 'DBSANDBOX_NOT_RUNNING')
    this.name = 'DbsandboxNotRunningError'
  }
}

/** `dbsandbox serve --detach` failed, timed out or printed no JSON line. */
class DbsandboxStartError extends DbsandboxError {
  constructor (message, stderr) {
    super(message, 'DBSANDBOX_START_FAILED')
    this.name = 'DbsandboxStartError'
    this.stderr = stderr || ''
  }
}

/**
 * The daemon answered with an error body {"error": {"code", "message"}}: `status` (HTTP),
 * `apiCode` (`key_in_use`, `not_found`, ...), `apiMessage`, `method`, `path`.
 */
class DbsandboxApiError extends DbsandboxError {
  constructor (method, reqPath, status, apiCode, apiMessage) {
    super(`dbsandbox daemon refused ${method} ${reqPath}: ${apiCode}: ${apiMessage} (HTTP ${status})`, 'DBSANDBOX_API_ERROR')
    this.name = 'DbsandboxApiError'
    this.method = method
    this.path = reqPath
    this.status = status
    this.apiCode = apiCode
    this.apiMessage = apiMessage
  }
}

// ---------------------------------------------------------------------------------------------
// Finding the daemon

/**
 * The dbsandbox executable: $DBSANDBOX_BIN, else the one in the platform package
 * (@dbsandbox/<os>-<cpu>), else `dbsandbox` on PATH. Throws DbsandboxNotRunningError when there
 * is none.
 *
 * @param {Record<string, string | undefined>} [env]
 * @returns {string}
 */
function findBinary (env = process.env) {
  const fs = require('node:fs')
  const isExec = (p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK)
      return fs.statSync(p).isFile()
    } catch {
      return false
    }
  }
  const configured = (env.DBSANDBOX_BIN || '').trim()
  if (configured) {
    if (configured.includes(path.sep) ? isExec(configured) : false) return path.resolve(configured)
    const onPath = configured.includes(path.sep) ? null : searchPath(configured, env, isExec)
    if (onPath) return onPath
    throw new DbsandboxNotRunningError(
      `dbsandbox: DBSANDBOX_BIN=${JSON.stringify(configured)} is not an executable file, so the dbsandbox ` +
        'daemon cannot be started. Point DBSANDBOX_BIN at the dbsandbox binary, or unset it to use `dbsandbox` from PATH.'
    )
  }
  const found = platformBinary(isExec) || searchPath('dbsandbox', env, isExec)
  if (!found) throw new DbsandboxNotRunningError()
  return found
}

/** `bin/dbsandbox` of the platform package, resolved from this package (null when absent). */
function platformBinary (isExec) {
  let manifest
  try {
    manifest = require.resolve(`${PLATFORM_PACKAGE}/package.json`)
  } catch {
    return null
  }
  const candidate = path.join(path.dirname(manifest), 'bin', process.platform === 'win32' ? 'dbsandbox.exe' : 'dbsandbox')
  return isExec(candidate) ? candidate : null
}

/** Refuse a daemon whose control API version (`reported`) is not API_VERSION. */
function checkApiVersion (reported, origin) {
  if (reported === API_VERSION) return
  const speaks = reported === undefined || reported === null
    ? 'reports no control API version (it is older than the versioned API)'
    : `speaks control API v${reported}`
  throw new DbsandboxError(
    `dbsandbox: the daemon found through ${origin} ${speaks}, but this @dbsandbox/node speaks v${API_VERSION}. ` +
      'Install matching versions: `npm install @dbsandbox/node@latest` brings the binary it speaks to ' +
      `(${PLATFORM_PACKAGE}); \`dbsandbox --version\` names a binary's control API.`,
    'DBSANDBOX_API_VERSION'
  )
}

function searchPath (name, env, isExec) {
  for (const dir of (env.PATH || '').split(path.delimiter)) {
    if (!dir) continue
    const candidate = path.join(dir, name)
    if (isExec(candidate)) return candidate
  }
  return null
}

/**
 * Run `dbsandbox serve --detach` in `cwd` (synchronously) and return its JSON line:
 * `{ api, token, proxy, pid, project, started }`.
 *
 * @param {{ cwd?: string, env?: Record<string, string | undefined> }} [options]
 */
function startOrAttach (options = {}) {
  const env = options.env || process.env
  const cwd = options.cwd || process.cwd()
  const bin = findBinary(env)
  const raw = (env.DBSANDBOX_START_TIMEOUT || '').trim()
  const seconds = raw ? Number(raw) : DEFAULT_START_TIMEOUT_SECONDS
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new DbsandboxStartError(`dbsandbox: DBSANDBOX_START_TIMEOUT=${JSON.stringify(raw)} is not a number of seconds`)
  }
  const shown = `\`${bin} serve --detach\` in ${cwd}`
  const r = spawnSync(bin, ['serve', '--detach'], {
    cwd,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: seconds * 1000,
    maxBuffer: 16 * 1024 * 1024
  })
  const stderr = (r.stderr || '').trim()
  if (r.error) {
    if (r.error.code === 'ETIMEDOUT') {
      throw new DbsandboxStartError(
        `dbsandbox: ${shown} did not answer within ${seconds} s` + (stderr ? `; its output:\n${stderr}` : '') +
          '\n(set DBSANDBOX_START_TIMEOUT to wait longer)', stderr)
    }
    throw new DbsandboxStartError(`dbsandbox: could not run ${shown}: ${r.error.message}`, stderr)
  }
  if (r.status !== 0) {
    const how = r.status === null ? `killed by ${r.signal}` : `exit status ${r.status}`
    throw new DbsandboxStartError(`dbsandbox: ${shown} failed (${how}):\n${stderr || '(nothing on stderr)'}`, stderr)
  }
  const lines = (r.stdout || '').split('\n').filter((l) => l.trim())
  let info = null
  try {
    info = lines.length ? JSON.parse(lines[lines.length - 1]) : null
  } catch {}
  if (!info || typeof info !== 'object' || typeof info.api !== 'string') {
    throw new DbsandboxStartError(
      `dbsandbox: ${shown} exited 0 but did not print the expected JSON line ({"api": ..., "proxy": ..., "pid": ...}); ` +
        `stdout was ${JSON.stringify((r.stdout || '').trim())}` + (stderr ? `, stderr:\n${stderr}` : ''), stderr)
  }
  return info
}

/**
 * @typedef {object} Daemon
 * @property {string} api e.g. http://127.0.0.1:41234
 * @property {string | null} token
 * @property {string | null} run the run scope (DBSANDBOX_RUN) sandboxes go to
 * @property {string} origin how it was found, for messages
 * @property {object | null} info the JSON line of `serve --detach`, when it was run
 */

/** @type {Daemon | null} */
let cachedDaemon = null

/**
 * The daemon of this process, found once: DBSANDBOX_URL (with DBSANDBOX_TOKEN, DBSANDBOX_RUN),
 * else `dbsandbox serve --detach` in the current directory. After starting or attaching it
 * exports DBSANDBOX_URL (and DBSANDBOX_TOKEN) so child processes use the same daemon.
 *
 * @param {{ cwd?: string, env?: Record<string, string | undefined>, refresh?: boolean }} [options]
 * @returns {Daemon}
 */
function daemon (options = {}) {
  if (cachedDaemon && !options.refresh && !options.env) return cachedDaemon
  const env = options.env || process.env
  let found
  const url = (env.DBSANDBOX_URL || '').trim()
  if (url) {
    const run = (env.DBSANDBOX_RUN || '').trim() || null
    found = {
      api: url.replace(/\/+$/, ''),
      token: (env.DBSANDBOX_TOKEN || '').trim() || null,
      run,
      origin: `DBSANDBOX_URL=${url}` + (run ? ` (run ${run})` : ''),
      info: null
    }
  } else {
    const cwd = options.cwd || process.cwd()
    const info = startOrAttach({ cwd, env })
    checkApiVersion(info.api_version, `\`dbsandbox serve --detach\` in ${cwd}`)
    found = {
      api: info.api.replace(/\/+$/, ''),
      token: info.token || null,
      run: null,
      origin: `\`dbsandbox serve --detach\` in ${cwd}`,
      info
    }
    if (!options.env) {
      process.env.DBSANDBOX_URL = found.api
      if (found.token) process.env.DBSANDBOX_TOKEN = found.token
    }
  }
  if (!/^https?:\/\/[^/]+/.test(found.api)) {
    throw new DbsandboxError(`dbsandbox: ${JSON.stringify(found.api)} is not a daemon address like http://127.0.0.1:41234 (${found.origin})`)
  }
  if (!found.info) checkApiVersion((requestSync(found, 'GET', '/v1/health') || {}).api_version, found.origin)
  if (!options.env) cachedDaemon = found
  return found
}

// ---------------------------------------------------------------------------------------------
// Requests

function requestSpec (d, method, reqPath, body) {
  const headers = { Accept: 'application/json' }
  if (d.token) headers.Authorization = `Bearer ${d.token}`
  const spec = { url: d.api + reqPath, method, headers, timeoutMs: REQUEST_TIMEOUT_MS }
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json'
    spec.body = JSON.stringify(body)
  }
  return spec
}

function interpret (d, method, reqPath, res) {
  let data = null
  try {
    data = res.body.trim() ? JSON.parse(res.body) : null
  } catch {}
  if (res.status >= 200 && res.status < 300) {
    if (data === null && res.body.trim()) {
      throw new DbsandboxError(`dbsandbox: the daemon at ${d.api} answered ${method} ${reqPath} with HTTP ${res.status} and a body that is not JSON: ${JSON.stringify(res.body.slice(0, 300))}`)
    }
    return data
  }
  const e = data && typeof data === 'object' && data.error && typeof data.error === 'object' ? data.error : null
  const code = e ? String(e.code || 'error') : ({ 401: 'unauthorized', 404: 'not_found' }[res.status] || 'http_error')
  const message = e ? String(e.message || '') : res.body.trim().slice(0, 300)
  throw new DbsandboxApiError(method, reqPath, res.status, code, message)
}

function unreachable (d, method, reqPath, message) {
  return new DbsandboxError(
    `dbsandbox: cannot reach the dbsandbox daemon at ${d.api} (${method} ${reqPath}: ${message}); it was found through ${d.origin}`,
    'DBSANDBOX_UNREACHABLE'
  )
}

/** Send one request to the daemon; resolves to the JSON body, or rejects with DbsandboxApiError. */
async function request (d, method, reqPath, body) {
  let res
  try {
    res = await httpRequest(requestSpec(d, method, reqPath, body))
  } catch (err) {
    throw unreachable(d, method, reqPath, err.message)
  }
  return interpret(d, method, reqPath, res)
}

/** The same, synchronously (in a short-lived child process: node has no synchronous HTTP). */
function requestSync (d, method, reqPath, body) {
  const r = spawnSync(process.execPath, [HTTP_CHILD], {
    input: JSON.stringify(requestSpec(d, method, reqPath, body)),
    encoding: 'utf8',
    timeout: REQUEST_TIMEOUT_MS + 5000,
    env: { PATH: process.env.PATH || '' }
  })
  let out = null
  try {
    out = JSON.parse(r.stdout)
  } catch {}
  if (!out) throw unreachable(d, method, reqPath, `helper process failed: ${r.error ? r.error.message : (r.stderr || '').trim() || `exit ${r.status}`}`)
  if (out.error) throw unreachable(d, method, reqPath, out.error)
  return interpret(d, method, reqPath, out)
}

function keyPath (key, suffix, run) {
  return `/v1/sandboxes/${encodeURIComponent(key)}${suffix || ''}` + (run ? `?run=${encodeURIComponent(run)}` : '')
}

// ---------------------------------------------------------------------------------------------
// Sandboxes

/** A sandbox the daemon handed out to this process. */
class Sandbox {
  /** @param {Daemon} d @param {any} data the API's Sandbox object */
  constructor (d, data) {
    this.daemon = d
    this.data = data
    /** @type {string} */ this.key = data.key
    /** @type {string} */ this.url = data.url
    /** @type {'rollback' | 'database'} */ this.isolation = data.isolation || 'rollback'
    /** @type {string | null} */ this.run = data.run || d.run || null
    this.released = false
  }

  /** Back to the template's state: POST /v1/sandboxes/{key}/reset. */
  async reset () {
    await request(this.daemon, 'POST', keyPath(this.key, '/reset', this.run))
  }

  /** GET /v1/sandboxes/{key}: stats and the tables written since the last reset. */
  async info () {
    return request(this.daemon, 'GET', keyPath(this.key, '', this.run))
  }

  /** DELETE /v1/sandboxes/{key} (already gone is fine). */
  async release () {
    if (this.released) return
    this.released = true
    forget(this)
    try {
      await request(this.daemon, 'DELETE', keyPath(this.key, '', this.run))
    } catch (err) {
      if (!(err instanceof DbsandboxApiError && err.apiCode === 'not_found')) throw err
    }
  }

  /** The same, synchronously (used at process exit). */
  releaseSync () {
    if (this.released) return
    this.released = true
    forget(this)
    try {
      requestSync(this.daemon, 'DELETE', keyPath(this.key, '', this.run))
    } catch (err) {
      if (!(err instanceof DbsandboxApiError && err.apiCode === 'not_found')) throw err
    }
  }
}

/** Sandboxes this process holds, by key. @type {Map<string, Sandbox>} */
const held = new Map()
let exitHookInstalled = false

function forget (sandbox) {
  if (held.get(sandbox.key) === sandbox) held.delete(sandbox.key)
}

function installExitHook () {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const sandbox of [...held.values()]) {
      try {
        sandbox.releaseSync()
      } catch {} // the daemon releases it anyway when this process is gone (owner_pid)
    }
  })
}

/**
 * The sandbox key of this test worker process, from the environment: `DBSANDBOX_KEY` if set;
 * Jest `JEST_WORKER_ID` -> `jest<id>-<pid>`; Vitest `VITEST_POOL_ID` (else `VITEST_WORKER_ID`)
 * -> `vitest<id>-<pid>`; otherwise `node-<pid>` (the `node --test` runner runs every test file
 * in a process of its own).
 *
 * @param {Record<string, string | undefined>} [env] defaults to process.env
 * @param {number} [pid] defaults to process.pid
 * @returns {string}
 */
function workerKey (env = process.env, pid = process.pid) {
  if (env.DBSANDBOX_KEY) return env.DBSANDBOX_KEY
  if (env.JEST_WORKER_ID) return `jest${env.JEST_WORKER_ID}-${pid}`
  if (env.VITEST_POOL_ID) return `vitest${env.VITEST_POOL_ID}-${pid}`
  if (env.VITEST_WORKER_ID) return `vitest${env.VITEST_WORKER_ID}-${pid}`
  return `node-${pid}`
}

function checkOptions (options) {
  const isolation = options.isolation || undefined
  if (isolation !== undefined && !ISOLATIONS.includes(isolation)) {
    throw new TypeError(`dbsandbox: isolation must be 'rollback' or 'database', not ${JSON.stringify(isolation)}`)
  }
  let key = options.key
  if (key === undefined || key === null || key === '') {
    key = workerKey()
    if (isolation === 'database') key = `${key}-db`
  }
  key = String(key)
  if (!KEY_PATTERN.test(key)) {
    throw new TypeError(`dbsandbox: bad sandbox key ${JSON.stringify(key)}: a key is 1 to 48 characters from A-Z a-z 0-9 _ -`)
  }
  return { key, isolation }
}

function acquireBody (d, key, isolation) {
  const body = { key, owner_pid: process.pid }
  if (isolation) body.isolation = isolation
  if (d.run) body.run = d.run
  return body
}

function adopt (d, data, key, isolation) {
  if (!data || typeof data.key !== 'string' || typeof data.url !== 'string') {
    throw new DbsandboxError(`dbsandbox: POST /v1/sandboxes answered without a key and url: ${JSON.stringify(data)}`)
  }
  if (isolation && data.isolation && data.isolation !== isolation) {
    throw new DbsandboxError(`dbsandbox: sandbox ${key} has isolation ${data.isolation}, not ${isolation}: use another key`)
  }
  const sandbox = new Sandbox(d, data)
  held.set(sandbox.key, sandbox)
  installExitHook()
  return sandbox
}

function keyInUse (d, key, err) {
  return new DbsandboxError(
    `dbsandbox: sandbox key ${JSON.stringify(key)} is held by another process on the daemon at ${d.api} ` +
      `(${err.apiMessage}). Keys are <worker>-<pid>: pass another key, or release it (DELETE ${d.api}/v1/sandboxes/${key})`,
    'DBSANDBOX_KEY_IN_USE'
  )
}

/**
 * Acquire a sandbox for this process (POST /v1/sandboxes), or give back the one it holds.
 * The daemon is found first (see daemon()). A key this same process acquired already (Jest and
 * Vitest load this module once per test file) is taken over.
 *
 * @param {{ key?: string, isolation?: 'rollback' | 'database' }} [options]
 * @returns {Promise<Sandbox>}
 */
async function acquireSandbox (options = {}) {
  const { key, isolation } = checkOptions(options)
  const mine = held.get(key)
  if (mine) return mine
  const d = daemon()
  try {
    return adopt(d, await request(d, 'POST', '/v1/sandboxes', acquireBody(d, key, isolation)), key, isolation)
  } catch (err) {
    if (!(err instanceof DbsandboxApiError) || err.apiCode !== 'key_in_use') throw err
    const existing = await request(d, 'GET', keyPath(key, '', d.run)).catch(() => null)
    if (existing && existing.owner_pid === process.pid) return adopt(d, existing, key, isolation)
    throw keyInUse(d, key, err)
  }
}

/**
 * The same, synchronously (so that `setup()` can return the URL at once).
 *
 * @param {{ key?: string, isolation?: 'rollback' | 'database' }} [options]
 * @returns {Sandbox}
 */
function acquireSandboxSync (options = {}) {
  const { key, isolation } = checkOptions(options)
  const mine = held.get(key)
  if (mine) return mine
  const d = daemon()
  try {
    return adopt(d, requestSync(d, 'POST', '/v1/sandboxes', acquireBody(d, key, isolation)), key, isolation)
  } catch (err) {
    if (!(err instanceof DbsandboxApiError) || err.apiCode !== 'key_in_use') throw err
    let existing = null
    try {
      existing = requestSync(d, 'GET', keyPath(key, '', d.run))
    } catch {}
    if (existing && existing.owner_pid === process.pid) return adopt(d, existing, key, isolation)
    throw keyInUse(d, key, err)
  }
}

/**
 * The connection URL of this worker's sandbox (acquired on first use), or of another sandbox
 * with `{ key }` / `{ isolation: 'database' }` (default key: the worker's key + `-db`).
 *
 * @param {{ key?: string, isolation?: 'rollback' | 'database' }} [options]
 * @returns {string}
 */
function sandboxUrl (options = {}) {
  return acquireSandboxSync(options).url
}

// ---------------------------------------------------------------------------------------------
// Reset

/**
 * Load a driver module: resolved from the current directory first (the project under test,
 * which matters when this package is installed as a symlink), then from this package.
 */
async function loadDriver (only) {
  if (only !== undefined && only !== 'pg' && only !== 'postgres') {
    throw new TypeError(`dbsandbox: driver must be 'pg' or 'postgres', not ${JSON.stringify(only)}`)
  }
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
  throw new DbsandboxError(
    `dbsandbox: cannot reset in-band: no PostgreSQL driver found (${names.join(' or ')}). ` +
      'Install one in your project (`npm install --save-dev pg` or `npm install --save-dev postgres`), ' +
      'or reset through the daemon: resetSandbox() without a driver option.'
  )
}

async function resetInBand (url, driver) {
  const { name, mod } = await loadDriver(driver)
  const explain = (err) => {
    if (err && err.code === '42883') {
      const wrapped = new DbsandboxError(
        `dbsandbox: ${RESET_STATEMENT} is not known on ${url}: this key has database isolation, ` +
          'which cannot be reset in-band; reset it through the daemon (resetSandbox(url) without a driver)',
        '42883'
      )
      wrapped.cause = err
      return wrapped
    }
    return err
  }
  if (name === 'pg') {
    const Client = mod.Client || (mod.default && mod.default.Client)
    const client = new Client({ connectionString: url })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.query(RESET_STATEMENT)
    } catch (err) {
      throw explain(err)
    } finally {
      await client.end().catch(() => {})
    }
  } else {
    const postgres = typeof mod === 'function' ? mod : mod.default
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      await sql.unsafe(RESET_STATEMENT)
    } catch (err) {
      throw explain(err)
    } finally {
      await sql.end({ timeout: 5 }).catch(() => {})
    }
  }
}

/**
 * Put a sandbox back to the template's state.
 *
 * - No `driver` option: through the daemon (POST /v1/sandboxes/{key}/reset) for a sandbox this
 *   process holds: `url` (default: this worker's sandbox) or a Sandbox. Rollback: everything
 *   every connection of the key wrote is rolled back, sequences restored, connections stay
 *   open. Database isolation: the key gets a fresh clone.
 * - `driver: 'pg' | 'postgres'`, or a URL this process does not hold: in-band, by running
 *   `SELECT dbsandbox_reset()` on a new connection (rollback sandboxes only).
 *
 * @param {string | Sandbox} [url]
 * @param {{ driver?: 'pg' | 'postgres' }} [options]
 * @returns {Promise<void>}
 */
async function resetSandbox (url, options = {}) {
  if (url instanceof Sandbox) return url.reset()
  if (url === undefined || url === null) {
    if (options.driver) return resetInBand(sandboxUrl(), options.driver)
    return (await acquireSandbox()).reset()
  }
  if (!options.driver) {
    for (const sandbox of held.values()) {
      if (sandbox.url === url) return sandbox.reset()
    }
  }
  return resetInBand(url, options.driver)
}

// ---------------------------------------------------------------------------------------------
// The one line

/**
 * Acquire this worker's sandbox now, register a `beforeEach` that resets it before every test,
 * and release it after the last test (with the `after` / `afterAll` hook when given, else when
 * the process exits). Returns its URL.
 *
 *     import { beforeEach, after } from 'node:test'   // Jest / Vitest: beforeEach, afterAll
 *     const url = setup({ beforeEach, after })
 *
 * @param {{ beforeEach: Function, after?: Function, afterAll?: Function }} hooks
 * @param {{ key?: string, isolation?: 'rollback' | 'database' }} [options]
 * @returns {string}
 */
function setup (hooks, options = {}) {
  if (!hooks || typeof hooks.beforeEach !== 'function') {
    throw new TypeError(
      "dbsandbox: setup() needs the test framework's beforeEach: setup({ beforeEach }) " +
        "(from 'node:test', Jest's global, or 'vitest')"
    )
  }
  const sandbox = acquireSandboxSync(options)
  hooks.beforeEach(async function dbsandboxReset () {
    await sandbox.reset()
  })
  const after = typeof hooks.after === 'function' ? hooks.after : typeof hooks.afterAll === 'function' ? hooks.afterAll : null
  if (after) {
    after(async function dbsandboxRelease () {
      await sandbox.release()
    })
  }
  return sandbox.url
}

/** Release every sandbox this process holds (DELETE). */
async function releaseAll () {
  await Promise.all([...held.values()].map((s) => s.release()))
}

module.exports = {
  sandboxUrl,
  resetSandbox,
  setup,
  workerKey,
  acquireSandbox,
  acquireSandboxSync,
  releaseAll,
  daemon,
  startOrAttach,
  findBinary,
  Sandbox,
  DbsandboxError,
  DbsandboxNotRunningError,
  DbsandboxStartError,
  DbsandboxApiError,
  RESET_STATEMENT,
  NOT_RUNNING_MESSAGE,
  API_VERSION,
  PLATFORM_PACKAGE
}
