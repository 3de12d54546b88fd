// Database isolation: the key owns a whole clone and commits for real, so statements that
// cannot run in a transaction (VACUUM, CREATE INDEX CONCURRENTLY, ...) work; a reset through the
// daemon gives the key a fresh clone.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import postgres from 'postgres'
import { sandboxUrl, resetSandbox, acquireSandbox, releaseAll } from '@dbsandbox/node'

after(releaseAll)

test('the default database key is the worker key + -db, acquired with database isolation', async () => {
  const sandbox = await acquireSandbox({ isolation: 'database' })
  assert.equal(sandbox.key, `node-${process.pid}-db`)
  assert.equal(sandbox.isolation, 'database')
  assert.equal(sandboxUrl({ isolation: 'database' }), sandbox.url)
  const info = await sandbox.info()
  assert.equal(info.isolation, 'database')
  assert.equal(info.owner_pid, process.pid)
})

test('pg: database isolation, real commits, VACUUM works, reset gives a fresh clone', async () => {
  const url = sandboxUrl({ isolation: 'database' })
  const a = new pg.Client({ connectionString: url })
  const b = new pg.Client({ connectionString: url })
  await a.connect()
  await b.connect()
  try {
    await a.query('VACUUM t0')
    await a.query('BEGIN')
    const { rows } = await a.query("insert into t0(name) values ('db-isolated') returning id::int as id")
    assert.equal(rows[0].id, 101)
    assert.equal((await b.query("select count(*)::int as n from t0 where name = 'db-isolated'")).rows[0].n, 0,
      'not visible to another connection before COMMIT: real transactions')
    await a.query('COMMIT')
    assert.equal((await b.query('select count(*)::int as n from t0')).rows[0].n, 101)
  } finally {
    await a.end().catch(() => {})
    await b.end().catch(() => {})
  }
  await resetSandbox(url) // through the daemon: a fresh clone
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    assert.equal((await c.query('select count(*)::int as n from t0')).rows[0].n, 100)
  } finally {
    await c.end()
  }
})

test('postgres: database isolation with a key of its own, VACUUM works', async () => {
  const sql = postgres(sandboxUrl({ isolation: 'database', key: `node-${process.pid}-db2` }), { max: 1, onnotice: () => {} })
  try {
    await sql.unsafe('VACUUM t0')
    const [ins] = await sql`insert into t0(name) values ('db-isolated') returning id::int as id`
    assert.equal(ins.id, 101, 'a key of its own: a fresh clone')
  } finally {
    await sql.end()
  }
})

test('for contrast, the rollback key refuses VACUUM with 25001', async () => {
  const sql = postgres(sandboxUrl(), { max: 1, onnotice: () => {} })
  try {
    await assert.rejects(sql.unsafe('VACUUM t0'), (err) => err.code === '25001')
  } finally {
    await sql.end()
  }
})
