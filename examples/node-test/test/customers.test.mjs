// Sign-ups with a fixed email (pg). The other test files run at the same time, in their own
// processes, and sign up the very same email: each file has its own sandbox.
import { test, beforeEach, after } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { setup } from '@dbsandbox/node'
import { signUp } from '../shop.mjs'

process.env.DATABASE_URL = setup({ beforeEach, after }) // the one line (+ tell the app its URL)

async function scalar (sql, params) {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  try {
    return Object.values((await client.query(sql, params)).rows[0])[0]
  } finally {
    await client.end()
  }
}

test('sign-up gets id 4 (3 seeded customers)', async () => {
  assert.equal(await signUp('new@example.com', 'New'), 4)
  assert.equal(await scalar('select count(*)::int from customers'), 4)
})

test('the same email again: no collision, id 4 again', async () => {
  assert.equal(await signUp('new@example.com', 'Again'), 4)
  assert.equal(await scalar('select count(*)::int from customers'), 4)
})

test('a duplicate email is refused with 23505', async () => {
  await signUp('new@example.com', 'New')
  await assert.rejects(signUp('new@example.com', 'Twice'), (err) => err.code === '23505')
  assert.equal(await scalar('select count(*)::int from customers'), 4)
})

for (const name of ['Ann', 'Bob', 'Cyd']) {
  test(`rename Ada to ${name}: Ada is still there`, async () => {
    assert.equal(await scalar("update customers set name = $1 where name = 'Ada' returning id::int", [name]), 1)
  })
}
