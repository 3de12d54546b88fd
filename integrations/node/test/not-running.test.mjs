// Without `dbsandbox run` (no DBSANDBOX_PORT) every entry point fails with one clear message.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { sandboxUrl, DbsandboxNotRunningError, NOT_RUNNING_MESSAGE } from '@dbsandbox/node'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkg = path.resolve(here, '..')

function envWithoutDbsandbox () {
  const env = { ...process.env }
  for (const k of ['DBSANDBOX_PORT', 'DBSANDBOX_HOST', 'NODE_TEST_CONTEXT']) delete env[k]
  return env
}

function runNode (args) {
  return spawnSync(process.execPath, args, { cwd: pkg, env: envWithoutDbsandbox(), encoding: 'utf8', timeout: 30000 })
}

function assertClearMessage (out) {
  assert.match(out, /DBSANDBOX_PORT is not set/)
  assert.match(out, /`dbsandbox run -- node --test`/)
  assert.match(out, /daemon .* not supported yet/)
}

test('in process: DbsandboxNotRunningError with code DBSANDBOX_NOT_RUNNING', () => {
  assert.throws(() => sandboxUrl({ env: {} }), (err) => {
    assert.ok(err instanceof DbsandboxNotRunningError)
    assert.equal(err.code, 'DBSANDBOX_NOT_RUNNING')
    assert.equal(err.message, NOT_RUNNING_MESSAGE)
    return true
  })
})

test('child process, ESM import: sandboxUrl() throws the clear error', () => {
  const r = runNode(['--input-type=module', '-e', "import { sandboxUrl } from '@dbsandbox/node'; sandboxUrl()"])
  assert.notEqual(r.status, 0)
  assertClearMessage(r.stderr)
  assert.match(r.stderr, /DbsandboxNotRunningError/)
})

test('child process, CommonJS require: sandboxUrl() throws the clear error', () => {
  const r = runNode(['-e', "require('@dbsandbox/node').sandboxUrl()"])
  assert.notEqual(r.status, 0)
  assertClearMessage(r.stderr)
})

test('child `node --test` of a file calling setup({ beforeEach }): fails with the clear error', () => {
  const r = runNode(['--test', path.join(pkg, 'fixtures', 'uses-setup.mjs')])
  assert.notEqual(r.status, 0)
  assertClearMessage(r.stdout + r.stderr)
})
