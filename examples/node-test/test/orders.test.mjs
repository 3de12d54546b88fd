// Orders (pg, one committed transaction each): the first order is always id 1.
import { test, beforeEach, after } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { setup } from '@dbsandbox/node'
import { placeOrder, signUp } from '../shop.mjs'

process.env.DATABASE_URL = setup({ beforeEach, after })

async function rows (sql) {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  try {
    return (await client.query(sql)).rows
  } finally {
    await client.end()
  }
}

test('the first order is id 1', async () => {
  assert.equal(await placeOrder('ada@example.com', 'book', 1500), 1)
  assert.deepEqual(await rows('select count(*)::int as n, sum(total_cents)::int as total from orders'), [{ n: 1, total: 1500 }])
})

test('two orders are ids 1 and 2', async () => {
  assert.equal(await placeOrder('grace@example.com', 'pen', 200), 1)
  assert.equal(await placeOrder('grace@example.com', 'pen', 300), 2)
  assert.deepEqual(await rows('select count(*)::int as n from orders'), [{ n: 2 }])
})

test('a new customer signs up (id 4) and orders (id 1)', async () => {
  assert.equal(await signUp('new@example.com', 'New'), 4)
  assert.equal(await placeOrder('new@example.com', 'book', 999), 1)
  assert.deepEqual(await rows('select c.email from orders o join customers c on c.id = o.customer_id where o.id = 1'),
    [{ email: 'new@example.com' }])
})
