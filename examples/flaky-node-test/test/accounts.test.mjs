// Accounts: seeded users are read only. Planted: an assumed id ('register assigns next id'),
// the victim of 'signup new customer' in marketing.test.mjs.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as shop from '../shop.mjs'

let db
before(async () => { db = await shop.connect() })
after(() => db.end())

test('find user by email', async () => {
  assert.equal(await shop.userName(db, 'ada@example.com'), 'Ada')
})

// Planted victim: assumes its user gets the id after the seeded ones (3 + 1).
test('register assigns next id', async () => {
  const id = await shop.registerUser(db, 'new@example.com', 'New')
  if (shop.planted()) {
    assert.equal(id, 4)
  } else {
    assert.ok(id > 3)
    assert.equal(await shop.userId(db, 'new@example.com'), id)
  }
})

test('seeded user names in id order', async () => {
  assert.deepEqual(await shop.column(db, 'select name from users where id <= 3 order by id'), ['Ada', 'Grace', 'Linus'])
})

test('unknown email has no user', async () => {
  assert.equal(await shop.userName(db, 'nobody@example.com'), null)
})

test('user order history', async () => {
  const skus = await shop.column(db,
    'select p.sku from orders o join products p on p.id = o.product_id where o.user_id = 1 order by o.id')
  assert.deepEqual(skus, ['pro-kit', 't-shirt'])
})
