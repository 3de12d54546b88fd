// Catalog: prices, search and reviews. Planted: 'starter kit is listed' (victim of
// 'discontinue starter kit' in inventory.test.mjs) and 'featured product pick' (random).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as shop from '../shop.mjs'

let db
before(async () => { db = await shop.connect() })
after(() => db.end())

// Planted random failure: picks one of two products in random order (PostgreSQL's random(), which
// nothing the test order controls seeds) and expects the first.
test('featured product pick', async () => {
  const order = shop.planted() ? 'random()' : 'sku'
  const sku = await shop.one(db, `select sku from products where sku in ('mug', 'sticker-pack') order by ${order} limit 1`)
  assert.equal(sku, 'mug')
})

test('one review per user and product', async () => {
  await shop.addReview(db, 'sticker-pack', 'grace@example.com', 5, 'shiny')
  await assert.rejects(shop.addReview(db, 'sticker-pack', 'grace@example.com', 1, 'changed my mind'), { code: '23505' })
})

test('price formatted in currency', async () => {
  assert.equal(await shop.formatPrice(db, 1200), '12.00 EUR')
})

test('product price lookup', async () => {
  assert.equal(await shop.productPrice(db, 'pro-kit'), 4900)
})

test('products under fifteen euros', async () => {
  assert.deepEqual(await shop.column(db, 'select sku from products where price_cents < 1500 order by price_cents'), ['sticker-pack', 'mug'])
})

test('review average rating', async () => {
  await shop.addReview(db, 't-shirt', 'ada@example.com', 4, 'soft')
  await shop.addReview(db, 't-shirt', 'linus@example.com', 2, 'shrinks')
  assert.equal(await shop.averageRating(db, 't-shirt'), 3)
})

test('review rating out of range', async () => {
  await assert.rejects(shop.addReview(db, 'mug', 'linus@example.com', 6, 'best mug ever'), { code: '23514' })
})

test('search products by name', async () => {
  assert.deepEqual(await shop.column(db, "select sku from products where name ilike '%shirt%' order by sku"), ['t-shirt'])
})

// Planted victim: the seeded starter kit must still be for sale.
test('starter kit is listed', async () => {
  assert.equal(await shop.productPrice(db, 'starter-kit'), 1900)
})

test('unknown sku has no price', async () => {
  assert.equal(await shop.productPrice(db, 'no-such-sku'), null)
})
