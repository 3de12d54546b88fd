// Inventory: products the tests add themselves and seeded stock. Planted: 'discontinue starter kit'
// (polluter of 'starter kit is listed' in catalog.test.mjs).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as shop from '../shop.mjs'

let db
before(async () => { db = await shop.connect() })
after(() => db.end())

test('add product', async () => {
  await shop.addProduct(db, 'inv-lamp', 'Lamp', 99900, 2)
  assert.equal(await shop.productPrice(db, 'inv-lamp'), 99900)
})

// Planted polluter: deletes the seeded starter kit and commits (with FLAKY_PLANTED=0 it
// discontinues a product of its own instead).
test('discontinue starter kit', async () => {
  let sku = 'starter-kit'
  if (!shop.planted()) {
    sku = 'inv-demo-kit'
    await shop.addProduct(db, sku, 'Demo kit', 99900, 1)
  }
  assert.equal(await shop.discontinueProduct(db, sku), 1)
  assert.equal(await shop.productPrice(db, sku), null)
})

test('restock product', async () => {
  await shop.addProduct(db, 'inv-desk', 'Desk', 99900, 0)
  assert.equal(await shop.changeStock(db, 'inv-desk', 5), 5)
})

test('seeded stock levels', async () => {
  assert.equal(await shop.stock(db, 'mug'), 40)
  assert.equal(await shop.stock(db, 'sticker-pack'), 200)
})

test('stock cannot go negative', async () => {
  await shop.addProduct(db, 'inv-chair', 'Chair', 99900, 1)
  await assert.rejects(shop.changeStock(db, 'inv-chair', -2), { code: '23514' })
  assert.equal(await shop.stock(db, 'inv-chair'), 1)
})
