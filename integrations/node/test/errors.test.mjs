// Clear errors, without a daemon: no binary, a bad DBSANDBOX_BIN, a failing or silent
// `serve --detach`, an unreachable DBSANDBOX_URL, and API error bodies (against a stub server).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync, execFile } from 'node:child_process'
import { createServer } from 'node:http'
import { mkdtempSync, writeFileSync, chmodSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { startOrAttach, DbsandboxApiError, DbsandboxStartError, NOT_RUNNING_MESSAGE } from '@dbsandbox/node'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkg = path.resolve(here, '..')
const tmp = mkdtempSync(path.join(tmpdir(), 'dbsandbox-node-errors-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

function cleanEnv (extra = {}) {
  const env = { ...process.env }
  for (const k of Object.keys(env)) {
    if (k.startsWith('DBSANDBOX_') || k.startsWith('NODE_TEST')) delete env[k]
  }
  return { ...env, ...extra }
}

function fakeBin (name, script) {
  const file = path.join(tmp, name)
  writeFileSync(file, `#!/bin/sh\n${script}\n`)
  chmodSync(file, 0o755)
  return file
}

function runNode (args, env) {
  return spawnSync(process.execPath, args, { cwd: pkg, env, encoding: 'utf8', timeout: 60000 })
}

// Asynchronous, so that a stub server in this process can answer the child.
function runNodeAsync (args, env) {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: pkg, env, encoding: 'utf8', timeout: 60000 }, (err, stdout, stderr) => {
      resolve({ status: err ? err.code : 0, stdout, stderr })
    })
  })
}

const SETUP_FILE = path.join(pkg, 'fixtures', 'uses-setup.mjs')

test('no DBSANDBOX_URL and no dbsandbox on PATH: DbsandboxNotRunningError says what to do', () => {
  const empty = path.join(tmp, 'empty-bin')
  mkdirSync(empty, { recursive: true })
  const r = runNode(['--input-type=module', '-e',
    "import { sandboxUrl } from '@dbsandbox/node'; try { sandboxUrl() } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })) }"],
  cleanEnv({ PATH: empty }))
  const err = JSON.parse(r.stdout)
  assert.equal(err.name, 'DbsandboxNotRunningError')
  assert.equal(err.code, 'DBSANDBOX_NOT_RUNNING')
  assert.equal(err.message, NOT_RUNNING_MESSAGE)
  assert.match(err.message, /DBSANDBOX_URL is not set and `dbsandbox` is not on PATH/)
  assert.match(err.message, /`dbsandbox run -- node --test`/)
})

test('child `node --test` of a file calling setup(): fails with the clear error', () => {
  const empty = path.join(tmp, 'empty-bin')
  mkdirSync(empty, { recursive: true })
  const r = runNode(['--test', SETUP_FILE], cleanEnv({ PATH: `${empty}` }))
  assert.notEqual(r.status, 0)
  assert.match(r.stdout + r.stderr, /DBSANDBOX_URL is not set and `dbsandbox` is not on PATH/)
})

test('a DBSANDBOX_BIN that is not executable is named', () => {
  const r = runNode(['-e', "require('@dbsandbox/node').sandboxUrl()"], cleanEnv({ DBSANDBOX_BIN: '/nonexistent/dbsandbox' }))
  assert.notEqual(r.status, 0)
  assert.match(r.stderr, /DBSANDBOX_BIN="\/nonexistent\/dbsandbox" is not an executable file/)
})

test('a failing `serve --detach` shows its stderr', () => {
  const bin = fakeBin('failing', 'echo "dbsandbox: error: no PostgreSQL binaries ($*)" >&2; exit 2')
  assert.throws(() => startOrAttach({ cwd: tmp, env: cleanEnv({ DBSANDBOX_BIN: bin }) }), (err) => {
    assert.ok(err instanceof DbsandboxStartError)
    assert.equal(err.code, 'DBSANDBOX_START_FAILED')
    assert.match(err.message, /serve --detach` in .* failed \(exit status 2\)/)
    assert.match(err.message, /no PostgreSQL binaries \(serve --detach\)/)
    return true
  })
})

test('a `serve --detach` without a JSON line, or too slow, is reported', () => {
  const silent = fakeBin('silent', "echo 'listening somewhere'")
  assert.throws(() => startOrAttach({ cwd: tmp, env: cleanEnv({ DBSANDBOX_BIN: silent }) }),
    /exited 0 but did not print the expected JSON line.*listening somewhere/)
  const slow = fakeBin('slow', 'exec sleep 5')
  assert.throws(() => startOrAttach({ cwd: tmp, env: cleanEnv({ DBSANDBOX_BIN: slow, DBSANDBOX_START_TIMEOUT: '0.5' }) }),
    /did not answer within 0.5 s/)
})

test('the JSON line is read after other output, in the given directory', () => {
  const bin = fakeBin('ok', `[ "$1 $2" = 'serve --detach' ] || exit 9
echo progress >&2
echo '{"api": "http://127.0.0.1:41234", "token": null, "proxy": "127.0.0.1:41235", "pid": 4242, "project": "'"$PWD"'", "started": true}'`)
  const info = startOrAttach({ cwd: tmp, env: cleanEnv({ DBSANDBOX_BIN: bin }) })
  assert.deepEqual([info.pid, info.project, info.started], [4242, tmp, true])
})

test('an unreachable DBSANDBOX_URL is reported with where it came from', () => {
  const r = runNode(['-e', "require('@dbsandbox/node').sandboxUrl()"], cleanEnv({ DBSANDBOX_URL: 'http://127.0.0.1:9' }))
  assert.notEqual(r.status, 0)
  assert.match(r.stderr, /cannot reach the dbsandbox daemon at http:\/\/127\.0\.0\.1:9 .*found through DBSANDBOX_URL=http:\/\/127\.0\.0\.1:9/)
})

const HEALTH = { status: 'ok', pid: 1, version: '0.1.0', api_version: 1 }

async function withStub (replies, fn) {
  replies = { 'GET /v1/health': [200, HEALTH], ...replies }
  const seen = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, body: body ? JSON.parse(body) : null, auth: req.headers.authorization })
      const [status, reply] = replies[`${req.method} ${req.url}`] || [404, { error: { code: 'not_found', message: 'no such thing' } }]
      res.writeHead(status, { 'Content-Type': 'application/json' })
      res.end(typeof reply === 'string' ? reply : JSON.stringify(reply))
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    return await fn(`http://127.0.0.1:${server.address().port}`, seen)
  } finally {
    server.close()
  }
}

test('API error bodies become DbsandboxApiError, sync and async; run scope and token are sent', async () => {
  const replies = {
    'POST /v1/sandboxes': [409, { error: { code: 'key_in_use', message: 'key k1 is held by pid 9' } }],
    'GET /v1/sandboxes/k1?run=r3': [200, { key: 'k1', owner_pid: 9, url: 'postgres://x@127.0.0.1:1/k1' }]
  }
  await withStub(replies, async (api, seen) => {
    const env = cleanEnv({ DBSANDBOX_URL: api, DBSANDBOX_RUN: 'r3', DBSANDBOX_TOKEN: 't0k' })
    const r = await runNodeAsync(['-e', `
      const d = require('@dbsandbox/node')
      try { d.acquireSandboxSync({ key: 'k1' }) } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })) }
      d.acquireSandbox({ key: 'k1' }).catch((e) => console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })))`], env)
    const [sync, async] = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
    for (const err of [sync, async]) {
      assert.equal(err.code, 'DBSANDBOX_KEY_IN_USE', r.stderr)
      assert.match(err.message, /sandbox key "k1" is held by another process .*key k1 is held by pid 9/)
    }
    const post = seen.find((s) => s.method === 'POST')
    assert.equal(post.body.key, 'k1')
    assert.equal(post.body.run, 'r3')
    assert.equal(typeof post.body.owner_pid, 'number')
    assert.equal(post.auth, 'Bearer t0k')
  })
})

test('other API errors keep the daemon\'s code and message', async () => {
  await withStub({ 'POST /v1/sandboxes': [503, { error: { code: 'unavailable', message: 'the pool cannot make a clone' } }] }, async (api) => {
    const r = await runNodeAsync(['-e', `
      require('@dbsandbox/node').acquireSandbox({ key: 'k2' }).catch((e) => {
        console.log(JSON.stringify({ isApi: e instanceof require('@dbsandbox/node').DbsandboxApiError, status: e.status, apiCode: e.apiCode, message: e.message }))
      })`], cleanEnv({ DBSANDBOX_URL: api }))
    const err = JSON.parse(r.stdout)
    assert.deepEqual([err.isApi, err.status, err.apiCode], [true, 503, 'unavailable'])
    assert.equal(err.message, 'dbsandbox daemon refused POST /v1/sandboxes: unavailable: the pool cannot make a clone (HTTP 503)')
  })
  assert.equal(DbsandboxApiError.name, 'DbsandboxApiError')
})

test('a daemon of another control API is refused, through DBSANDBOX_URL and serve --detach', async () => {
  const health = { ...HEALTH, version: '9.0.0', api_version: 7 }
  await withStub({ 'GET /v1/health': [200, health] }, async (api) => {
    const r = await runNodeAsync(['-e', `
      try { require('@dbsandbox/node').sandboxUrl() } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`],
    cleanEnv({ DBSANDBOX_URL: api }))
    const err = JSON.parse(r.stdout)
    assert.equal(err.code, 'DBSANDBOX_API_VERSION', r.stderr)
    assert.match(err.message, /found through DBSANDBOX_URL=.* speaks control API v7, but this @dbsandbox\/node speaks v1/)
  })
  for (const [line, says] of [
    ['{"api": "http://127.0.0.1:41234", "api_version": 2}', /speaks control API v2/],
    ['{"api": "http://127.0.0.1:41234"}', /reports no control API version/]
  ]) {
    const bin = fakeBin('dbsandbox-old-api', `echo '${line}'`)
    const r = runNode(['-e', `
      try { require('@dbsandbox/node').sandboxUrl() } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`],
    cleanEnv({ DBSANDBOX_BIN: bin }))
    const err = JSON.parse(r.stdout)
    assert.equal(err.code, 'DBSANDBOX_API_VERSION', r.stderr)
    assert.match(err.message, says)
    assert.match(err.message, /npm install @dbsandbox\/node@latest/)
  }
})

