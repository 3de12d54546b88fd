// The same fixed email as customers.test.mjs, at the same time, through postgres.js.
import { test, beforeEach, after } from 'node:test'
import assert from 'node:assert/strict'
import postgres from 'postgres'
import { setup } from '@dbsandbox/node'

const sql = postgres(setup({ beforeEach, after }), { max: 3, onnotice: () => {} })
after(() => sql.end())

test('insert the fixed email: id 4, 4 customers', async () => {
  const [row] = await sql`insert into customers(email, name) values ('new@example.com', 'New') returning id::int as id`
  assert.equal(row.id, 4)
  assert.equal((await sql`select count(*)::int as n from customers`)[0].n, 4)
})

test('again: id 4, 4 customers', async () => {
  const [row] = await sql.begin((tx) => tx`insert into customers(email, name) values ('new@example.com', 'New') returning id::int as id`)
  assert.equal(row.id, 4)
  assert.equal((await sql`select count(*)::int as n from customers`)[0].n, 4)
})

test('customer 1 deleted: 2 left, no leftovers from other tests', async () => {
  await sql`delete from customers where id = 1`
  assert.deepEqual((await sql`select email from customers order by id`).map((r) => r.email), ['grace@example.com', 'linus@example.com'])
})
