// Orders: the seeded orders are read only. Planted: 'place order', the polluter of
// 'count seeded orders' (admin.test.js).
const shop = require('../shop')

let db
beforeAll(async () => { db = await shop.connect() })
afterAll(() => db.end())

test('order customer email', async () => {
  expect(await shop.one(db, 'select u.email from orders o join users u on u.id = o.user_id where o.id = 2'))
    .toBe('grace@example.com')
})

test('order quantity must be positive', async () => {
  await expect(shop.placeOrder(db, 'ada@example.com', 'mug', 0)).rejects.toMatchObject({ code: '23514' })
})

test('order with coupon', async () => {
  expect(await shop.one(db, 'select coupon_code from orders where id = 4')).toBe('VIP20')
})

// Planted polluter: places an order and commits it (with FLAKY_PLANTED=0 it cancels it again).
test('place order', async () => {
  const order = await shop.placeOrder(db, 'grace@example.com', 'mug', 1)
  expect(order.total).toBe(1200)
  if (!shop.planted()) expect(await shop.cancelOrder(db, order.id)).toBe(1)
})

test('seeded order total', async () => {
  expect(await shop.one(db, 'select total_cents from orders where id = 1')).toBe(4900)
})
