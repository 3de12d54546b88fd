// postgres (postgres.js) through a rollback sandbox, reset before each test by setup().
// Runs in its own process (key node-<pid>) next to pg.test.mjs, which commits the same names.
// No `after` hook here: the sandbox is released when the process exits.
import { test, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import postgres from 'postgres'
import { setup, resetSandbox } from '@dbsandbox/node'

const url = setup({ beforeEach })

const open = () => postgres(url, { max: 1, onnotice: () => {} })

async function count (sql, name) {
  const rows = name === undefined
    ? await sql`select count(*)::int as n from t0`
    : await sql`select count(*)::int as n from t0 where name = ${name}`
  return rows[0].n
}

async function commitFixedName (name) {
  const sql = open()
  try {
    assert.equal(await count(sql), 100, 'starts from the seed')
    const [row] = await sql.begin((tx) => tx`insert into t0(name) values (${name}) returning id::int as id`)
    assert.equal(row.id, 101)
    assert.equal(await count(sql), 101)
    assert.equal(await count(sql, name), 1)
  } finally {
    await sql.end()
  }
}

test('the key is this test process\'s own', () => {
  assert.match(url, new RegExp(`/node-${process.pid}$`))
})

test('postgres: commit a fixed unique name (first time)', async () => {
  await commitFixedName('fixed-unique-name')
})

test('postgres: commit the same fixed unique name (second time, no collision)', async () => {
  await commitFixedName('fixed-unique-name')
})

test('postgres: a second connection of the code under test commits; visible here, gone after reset', async () => {
  const sql = open()
  try {
    // postgres.js connects lazily: the test's client has no connection yet when the app's client
    // ends below, and that is fine: an acquired sandbox is not reset on its last close
    // the code under test: its own client (own pool of 3), a committed transaction
    const app = postgres(url, { max: 3, onnotice: () => {} })
    try {
      await app.begin(async (tx) => {
        await tx`insert into t0(name) values ('made-by-app')`
        await tx`insert into t0(name) values ('made-by-app-2')`
      })
    } finally {
      await app.end()
    }
    assert.equal(await count(sql), 102)
    assert.equal(await count(sql, 'made-by-app'), 1)

    await resetSandbox(url, { driver: 'postgres' }) // in-band; resetSandbox(url) goes through the daemon

    assert.equal(await count(sql), 100)
    assert.equal(await count(sql, 'made-by-app'), 0)
    const [row] = await sql`insert into t0(name) values ('made-by-app') returning id::int as id`
    assert.equal(row.id, 101)
  } finally {
    await sql.end()
  }
})

test('postgres: a caught unique violation does not break the sandbox', async () => {
  const sql = open()
  try {
    await assert.rejects(sql`insert into t0(name) values ('seed1')`, (err) => err.code === '23505')
    const [row] = await sql`insert into t0(name) values ('after-the-error') returning id::int as id`
    // the failed insert consumed id 101, as on a real server
    assert.equal(row.id, 102)
    assert.equal(await count(sql), 101)
  } finally {
    await sql.end()
  }
})
