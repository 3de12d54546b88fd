// Stock levels with postgres.js (porsager): exact quantities after each test's writes.
import { test, beforeEach, after } from 'node:test'
import assert from 'node:assert/strict'
import postgres from 'postgres'
import { setup } from '@dbsandbox/node'
import { placeOrder } from '../shop.mjs'

process.env.DATABASE_URL = setup({ beforeEach, after })
const sql = postgres(process.env.DATABASE_URL, { max: 2, onnotice: () => {} })
after(() => sql.end())

const quantity = async (sku) => (await sql`select quantity from stock where sku = ${sku}`)[0].quantity

test('one book sold: 9 left', async () => {
  await placeOrder('ada@example.com', 'book', 1500)
  assert.equal(await quantity('book'), 9)
})

test('ten books sold empty the shelf; the eleventh is refused', async () => {
  for (let i = 0; i < 10; i++) await placeOrder('linus@example.com', 'book', 1500)
  assert.equal(await quantity('book'), 0)
  await assert.rejects(placeOrder('linus@example.com', 'book', 1500), (err) => err.code === '23514')
  assert.equal(await quantity('book'), 0)
})

test('a restock committed in a transaction (postgres.js sql.begin)', async () => {
  await sql.begin(async (tx) => {
    await tx`update stock set quantity = quantity + 5 where sku = 'book'`
    await tx`insert into stock(sku, quantity) values ('ink', 3)`
  })
  assert.equal(await quantity('book'), 15)
  assert.equal((await sql`select count(*)::int as n from stock`)[0].n, 3)
})
