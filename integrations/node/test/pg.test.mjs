// node-postgres (pg) through a rollback sandbox, reset before each test by setup().
// This file runs in its own process under `node --test`, so its key is node-<pid>: the
// postgres.test.mjs file commits the very same names at the same time, in its own key.
import { test, beforeEach, after } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { setup, sandboxUrl, resetSandbox } from '@dbsandbox/node'

const url = setup({ beforeEach, after })

async function connect () {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  return client
}

async function count (client, name) {
  const { rows } = name === undefined
    ? await client.query('select count(*)::int as n from t0')
    : await client.query('select count(*)::int as n from t0 where name = $1', [name])
  return rows[0].n
}

// Commits a fixed unique name: without a reset in between, the second test that does this
// fails with a unique violation and every count is off by one.
async function commitFixedName (name) {
  const client = await connect()
  try {
    assert.equal(await count(client), 100, 'starts from the seed')
    await client.query('BEGIN')
    const { rows } = await client.query('insert into t0(name) values ($1) returning id::int as id', [name])
    await client.query('COMMIT')
    assert.equal(rows[0].id, 101, 'the sequence starts again after the 100 seed rows')
    assert.equal(await count(client), 101)
    assert.equal(await count(client, name), 1)
  } finally {
    await client.end()
  }
}

test('the URL is this test process\'s key', () => {
  assert.match(url, new RegExp(`^postgres(ql)?://[^/]+/node-${process.pid}$`))
  assert.equal(sandboxUrl(), url)
})

test('pg: commit a fixed unique name (first time)', async () => {
  await commitFixedName('fixed-unique-name')
})

test('pg: commit the same fixed unique name (second time, no collision)', async () => {
  await commitFixedName('fixed-unique-name')
})

test('pg: autocommitted insert, exact count and next id', async () => {
  const client = await connect()
  try {
    const { rows } = await client.query("insert into t0(name) values ('pg-autocommit') returning id::int as id")
    assert.equal(rows[0].id, 101)
    assert.equal(await count(client), 101)
  } finally {
    await client.end()
  }
})

// The code under test opens its own pool and commits; the test's connection sees the rows
// (the key's connections share one transaction), and a reset removes them.
async function codeUnderTestCreatesUser (connectionString, name) {
  const pool = new pg.Pool({ connectionString, max: 2 })
  try {
    const c = await pool.connect()
    try {
      await c.query('BEGIN')
      await c.query('insert into t0(name, payload) values ($1, $2)', [name, { by: 'app' }])
      await c.query('COMMIT')
    } finally {
      c.release()
    }
  } finally {
    await pool.end()
  }
}

test('pg: a second pool of the code under test commits; visible here, gone after reset', async () => {
  const client = await connect()
  try {
    await codeUnderTestCreatesUser(url, 'made-by-app')
    assert.equal(await count(client, 'made-by-app'), 1, 'the app pool\'s commit is visible to the test connection')
    assert.equal(await count(client), 101)

    await resetSandbox(url) // through the daemon's API

    assert.equal(await count(client, 'made-by-app'), 0, 'gone after the reset')
    assert.equal(await count(client), 100)
    const { rows } = await client.query("insert into t0(name) values ('made-by-app') returning id::int as id")
    assert.equal(rows[0].id, 101, 'the sequence is back at the template value')
  } finally {
    await client.end()
  }
})

test('pg: the app commits and closes while the test holds no connection; still there until the reset', async () => {
  await codeUnderTestCreatesUser(url, 'made-by-app') // its pool ends: the key has no connection left
  const client = await connect()
  try {
    assert.equal(await count(client, 'made-by-app'), 1, 'an acquired sandbox is not reset on last close')
    await resetSandbox(url, { driver: 'pg' }) // the in-band statement works too
    assert.equal(await count(client, 'made-by-app'), 0)
  } finally {
    await client.end()
  }
})
