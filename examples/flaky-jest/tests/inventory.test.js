// Inventory: products the tests add themselves and seeded stock. Planted: 'discontinue starter kit'
// (polluter of 'starter kit is listed' in catalog.test.js).
const shop = require('../shop')

let db
beforeAll(async () => { db = await shop.connect() })
afterAll(() => db.end())

test('add product', async () => {
  await shop.addProduct(db, 'inv-lamp', 'Lamp', 99900, 2)
  expect(await shop.productPrice(db, 'inv-lamp')).toBe(99900)
})

// Planted polluter: deletes the seeded starter kit and commits (with FLAKY_PLANTED=0 it
// discontinues a product of its own instead).
test('discontinue starter kit', async () => {
  let sku = 'starter-kit'
  if (!shop.planted()) {
    sku = 'inv-demo-kit'
    await shop.addProduct(db, sku, 'Demo kit', 99900, 1)
  }
  expect(await shop.discontinueProduct(db, sku)).toBe(1)
  expect(await shop.productPrice(db, sku)).toBeNull()
})

test('restock product', async () => {
  await shop.addProduct(db, 'inv-desk', 'Desk', 99900, 0)
  expect(await shop.changeStock(db, 'inv-desk', 5)).toBe(5)
})

test('seeded stock levels', async () => {
  expect(await shop.stock(db, 'mug')).toBe(40)
  expect(await shop.stock(db, 'sticker-pack')).toBe(200)
})

test('stock cannot go negative', async () => {
  await shop.addProduct(db, 'inv-chair', 'Chair', 99900, 1)
  await expect(shop.changeStock(db, 'inv-chair', -2)).rejects.toMatchObject({ code: '23514' })
  expect(await shop.stock(db, 'inv-chair')).toBe(1)
})
