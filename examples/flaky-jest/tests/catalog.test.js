// Catalog: prices, search and reviews. Planted: 'starter kit is listed' (victim of
// 'discontinue starter kit' in inventory.test.js) and 'featured product pick' (random).
const shop = require('../shop')

let db
beforeAll(async () => { db = await shop.connect() })
afterAll(() => db.end())

// Planted random failure: picks one of two products in random order (PostgreSQL's random(), which
// nothing the test order controls seeds) and expects the first.
test('featured product pick', async () => {
  const order = shop.planted() ? 'random()' : 'sku'
  const sku = await shop.one(db, `select sku from products where sku in ('mug', 'sticker-pack') order by ${order} limit 1`)
  expect(sku).toBe('mug')
})

test('one review per user and product', async () => {
  await shop.addReview(db, 'sticker-pack', 'grace@example.com', 5, 'shiny')
  await expect(shop.addReview(db, 'sticker-pack', 'grace@example.com', 1, 'changed my mind'))
    .rejects.toMatchObject({ code: '23505' })
})

test('price formatted in currency', async () => {
  expect(await shop.formatPrice(db, 1200)).toBe('12.00 EUR')
})

test('product price lookup', async () => {
  expect(await shop.productPrice(db, 'pro-kit')).toBe(4900)
})

test('products under fifteen euros', async () => {
  expect(await shop.column(db, 'select sku from products where price_cents < 1500 order by price_cents'))
    .toEqual(['sticker-pack', 'mug'])
})

test('review average rating', async () => {
  await shop.addReview(db, 't-shirt', 'ada@example.com', 4, 'soft')
  await shop.addReview(db, 't-shirt', 'linus@example.com', 2, 'shrinks')
  expect(await shop.averageRating(db, 't-shirt')).toBe(3)
})

test('review rating out of range', async () => {
  await expect(shop.addReview(db, 'mug', 'linus@example.com', 6, 'best mug ever'))
    .rejects.toMatchObject({ code: '23514' })
})

test('search products by name', async () => {
  expect(await shop.column(db, "select sku from products where name ilike '%shirt%' order by sku")).toEqual(['t-shirt'])
})

// Planted victim: the seeded starter kit must still be for sale.
test('starter kit is listed', async () => {
  expect(await shop.productPrice(db, 'starter-kit')).toBe(1900)
})

test('unknown sku has no price', async () => {
  expect(await shop.productPrice(db, 'no-such-sku')).toBeNull()
})
