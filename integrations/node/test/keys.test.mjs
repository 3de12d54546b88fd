// Key per worker, URL building, setup() with Jest/Vitest-style hooks, and the CJS/ESM entries.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import pg from 'pg'
import * as esm from '@dbsandbox/node'

const { workerKey, sandboxUrl, setup } = esm
const require = createRequire(import.meta.url)

test('workerKey: Jest, Vitest, node --test, override, default', () => {
  assert.equal(workerKey({ JEST_WORKER_ID: '3' }, 42), 'jest3')
  assert.equal(workerKey({ VITEST_POOL_ID: '2', VITEST_WORKER_ID: '9' }, 42), 'vitest2')
  assert.equal(workerKey({ VITEST_WORKER_ID: '9' }, 42), 'vitest9')
  assert.equal(workerKey({ NODE_TEST_CONTEXT: 'child-v8' }, 42), 'node42')
  assert.equal(workerKey({ DBSANDBOX_KEY: 'mine', JEST_WORKER_ID: '1' }, 42), 'mine')
  assert.equal(workerKey({}, 42), 'main')
  // this file runs under `node --test`, in a process of its own
  assert.equal(workerKey(), `node${process.pid}`)
})

test('sandboxUrl: host, port, key and isolation', () => {
  const env = { DBSANDBOX_HOST: '127.0.0.1', DBSANDBOX_PORT: '6543', JEST_WORKER_ID: '4' }
  assert.equal(sandboxUrl({ env }), 'postgres://dbsandbox@127.0.0.1:6543/jest4')
  assert.equal(sandboxUrl({ env, key: 'k_1-x' }), 'postgres://dbsandbox@127.0.0.1:6543/k_1-x')
  assert.equal(sandboxUrl({ env, isolation: 'database' }),
    'postgres://dbsandbox@127.0.0.1:6543/jest4-db?options=-c%20dbsandbox.isolation%3Ddatabase')
  assert.equal(sandboxUrl({ env: { DBSANDBOX_PORT: '1' } }), 'postgres://dbsandbox@127.0.0.1:1/main')
  assert.equal(sandboxUrl({ env: { DBSANDBOX_HOST: '::1', DBSANDBOX_PORT: '1' } }), 'postgres://dbsandbox@[::1]:1/main')
})

test('pg parses the database-isolation URL into the startup options', () => {
  const url = sandboxUrl({ env: { DBSANDBOX_PORT: '6543' }, isolation: 'database', key: 'k' })
  const client = new pg.Client({ connectionString: url })
  assert.equal(client.connectionParameters.database, 'k')
  assert.equal(client.connectionParameters.options, '-c dbsandbox.isolation=database')
})

test('sandboxUrl refuses bad keys and isolations', () => {
  const env = { DBSANDBOX_PORT: '6543' }
  for (const key of ['has space', 'a/b', 'x'.repeat(49), 'ü']) {
    assert.throws(() => sandboxUrl({ env, key }), /bad sandbox key/)
  }
  assert.throws(() => sandboxUrl({ env, isolation: 'snapshot' }), /isolation must be/)
  // the default database-isolation key of a 46-character key would be too long
  assert.throws(() => sandboxUrl({ env: { ...env, DBSANDBOX_KEY: 'x'.repeat(46) }, isolation: 'database' }), /bad sandbox key/)
})

test('setup() with Jest/Vitest-style globals registers one reset hook and returns the URL', async () => {
  const hooks = []
  const url = setup({ beforeEach: (fn) => hooks.push(fn) }, { key: 'fake-jest-1' })
  assert.equal(url, sandboxUrl({ key: 'fake-jest-1' }))
  assert.equal(hooks.length, 1)
  assert.equal(hooks[0].length, 0, 'no `done` parameter: Jest would otherwise wait for a callback')

  // the hook really resets that key
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query("insert into t0(name) values ('before-hook')")
    assert.equal((await client.query('select count(*)::int as n from t0')).rows[0].n, 101)
    await hooks[0]()
    assert.equal((await client.query('select count(*)::int as n from t0')).rows[0].n, 100)
  } finally {
    await client.end()
  }
})

test('setup() refuses a missing beforeEach and database isolation', () => {
  assert.throws(() => setup({}), /needs the test framework's beforeEach/)
  assert.throws(() => setup(undefined), /needs the test framework's beforeEach/)
  assert.throws(() => setup({ beforeEach () {} }, { isolation: 'database' }), /cannot be reset in-band/)
})

test('resetSandbox refuses an unknown driver name', async () => {
  await assert.rejects(esm.resetSandbox(sandboxUrl(), { driver: 'mysql' }), /driver must be 'pg' or 'postgres'/)
})

test('the CommonJS entry exports the same functions', () => {
  const cjs = require('@dbsandbox/node')
  for (const name of ['sandboxUrl', 'resetSandbox', 'setup', 'workerKey', 'DbsandboxNotRunningError']) {
    assert.equal(typeof cjs[name], 'function', name)
    assert.equal(cjs[name], esm[name], name)
  }
  assert.equal(esm.default, cjs)
})
