// Database isolation: the key owns a whole clone and commits for real, so statements that
// cannot run in a transaction (VACUUM, CREATE INDEX CONCURRENTLY, ...) work. Both drivers must
// pass the `options` URL parameter through to the proxy.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import postgres from 'postgres'
import { sandboxUrl, resetSandbox, DATABASE_ISOLATION_QUERY } from '@dbsandbox/node'

const base = `postgres://dbsandbox@${process.env.DBSANDBOX_HOST}:${process.env.DBSANDBOX_PORT}`

test('the URL: default key node<pid>-db and the options parameter', () => {
  assert.equal(DATABASE_ISOLATION_QUERY, '?options=-c%20dbsandbox.isolation%3Ddatabase')
  assert.equal(sandboxUrl({ isolation: 'database' }), `${base}/node${process.pid}-db${DATABASE_ISOLATION_QUERY}`)
  assert.equal(sandboxUrl({ isolation: 'database', key: 'k1' }), `${base}/k1${DATABASE_ISOLATION_QUERY}`)
})

test('pg: database isolation, real commits, VACUUM works, no in-band reset', async () => {
  const url = sandboxUrl({ isolation: 'database' })
  const a = new pg.Client({ connectionString: url })
  const b = new pg.Client({ connectionString: url })
  await a.connect()
  await b.connect()
  try {
    assert.deepEqual((await a.query('show dbsandbox.isolation')).rows, [{ 'dbsandbox.isolation': 'database' }])
    await a.query('VACUUM t0')
    await a.query('BEGIN')
    const { rows } = await a.query("insert into t0(name) values ('db-isolated') returning id::int as id")
    assert.equal(rows[0].id, 101)
    assert.equal((await b.query("select count(*)::int as n from t0 where name = 'db-isolated'")).rows[0].n, 0,
      'not visible to another connection before COMMIT: real transactions')
    await a.query('COMMIT')
    assert.equal((await b.query('select count(*)::int as n from t0')).rows[0].n, 101)

    await assert.rejects(resetSandbox(url, { driver: 'pg' }), (err) => {
      assert.equal(err.code, '42883')
      assert.match(err.message, /database isolation/)
      return true
    })
  } finally {
    await a.end()
    await b.end()
  }
})

test('postgres: database isolation through the URL, VACUUM works', async () => {
  const sql = postgres(sandboxUrl({ isolation: 'database', key: `node${process.pid}-db2` }), { max: 1, onnotice: () => {} })
  try {
    const [row] = await sql`show dbsandbox.isolation`
    assert.equal(row['dbsandbox.isolation'], 'database')
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
