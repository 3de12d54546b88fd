// Key per worker, setup() with Jest/Vitest-style hooks, argument checks, the CJS/ESM entries.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import pg from 'pg'
import * as esm from '@dbsandbox/node'

const { workerKey, sandboxUrl, setup, acquireSandbox } = esm
const require = createRequire(import.meta.url)

test('workerKey: Jest, Vitest, node --test, override', () => {
  assert.equal(workerKey({ JEST_WORKER_ID: '3' }, 42), 'jest3-42')
  assert.equal(workerKey({ VITEST_POOL_ID: '2', VITEST_WORKER_ID: '9' }, 42), 'vitest2-42')
  assert.equal(workerKey({ VITEST_WORKER_ID: '9' }, 42), 'vitest9-42')
  assert.equal(workerKey({ NODE_TEST_CONTEXT: 'child-v8' }, 42), 'node-42')
  assert.equal(workerKey({}, 42), 'node-42')
  assert.equal(workerKey({ DBSANDBOX_KEY: 'mine', JEST_WORKER_ID: '1' }, 42), 'mine')
  assert.equal(workerKey(), `node-${process.pid}`)
})

test('sandboxUrl: the daemon\'s URL of this process\'s key, acquired once', async () => {
  const url = sandboxUrl()
  assert.match(url, new RegExp(`^postgres(ql)?://[^/]+/node-${process.pid}$`))
  assert.equal(sandboxUrl(), url)
  assert.equal((await acquireSandbox()).url, url)
  if (process.env.DBSANDBOX_RUN) {
    assert.match(url, new RegExp(`:${process.env.DBSANDBOX_PORT}/`), 'under `dbsandbox run`: the run\'s proxy')
  }
})

test('sandboxUrl and setup refuse bad keys and isolations before asking the daemon', () => {
  for (const key of ['has space', 'a/b', 'x'.repeat(49), 'ü']) {
    assert.throws(() => sandboxUrl({ key }), /bad sandbox key/)
  }
  assert.throws(() => sandboxUrl({ isolation: 'snapshot' }), /isolation must be 'rollback' or 'database'/)
  assert.throws(() => setup({}), /needs the test framework's beforeEach/)
  assert.throws(() => setup(undefined), /needs the test framework's beforeEach/)
})

test('setup() with Jest/Vitest-style globals: one reset hook, one release hook, the URL', async () => {
  const before = []
  const after = []
  const key = `fake-jest-${process.pid}`
  const url = setup({ beforeEach: (fn) => before.push(fn), afterAll: (fn) => after.push(fn) }, { key })
  assert.match(url, new RegExp(`/${key}$`))
  assert.equal(before.length, 1)
  assert.equal(after.length, 1)
  assert.equal(before[0].length, 0, 'no `done` parameter: Jest would otherwise wait for a callback')

  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query("insert into t0(name) values ('before-hook')")
    assert.equal((await client.query('select count(*)::int as n from t0')).rows[0].n, 101)
    await before[0]() // the reset hook
    assert.equal((await client.query('select count(*)::int as n from t0')).rows[0].n, 100)
  } finally {
    await client.end()
  }
  await after[0]() // the release hook
  const d = esm.daemon()
  const res = await fetch(`${d.api}/v1/sandboxes`, { headers: { Authorization: `Bearer ${d.token}` } })
  const keys = (await res.json()).sandboxes.map((s) => s.key)
  assert.ok(!keys.includes(key), `${key} released`)
})

test('a second setup() in the same process (Jest loads modules per test file) takes its key over', () => {
  const hooks = { beforeEach () {} }
  const key = `twice-${process.pid}`
  const first = setup(hooks, { key })
  // A fresh copy of the module, as Jest's per-file module registry gives: it does not know the
  // key is held, gets 409 key_in_use, sees owner_pid is this process, and takes it over.
  const modPath = require.resolve('@dbsandbox/node')
  const cached = require.cache[modPath]
  delete require.cache[modPath]
  try {
    const fresh = require(modPath)
    assert.notEqual(fresh.setup, setup)
    assert.equal(fresh.setup(hooks, { key }), first)
  } finally {
    require.cache[modPath] = cached
  }
})

test('resetSandbox refuses an unknown driver name', async () => {
  await assert.rejects(esm.resetSandbox(sandboxUrl(), { driver: 'mysql' }), /driver must be 'pg' or 'postgres'/)
})

test('the CommonJS entry exports the same functions', () => {
  const cjs = require('@dbsandbox/node')
  for (const name of ['sandboxUrl', 'resetSandbox', 'setup', 'workerKey', 'acquireSandbox', 'DbsandboxNotRunningError', 'DbsandboxApiError']) {
    assert.equal(typeof cjs[name], 'function', name)
    assert.equal(cjs[name], esm[name], name)
  }
  assert.equal(esm.default, cjs)
})
