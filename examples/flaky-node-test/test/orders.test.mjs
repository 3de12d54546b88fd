// Orders: the seeded orders are read only. Planted: 'place order', the polluter of
// 'count seeded orders' (admin.test.mjs).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as shop from '../shop.mjs'

let db
before(async () => { db = await shop.connect() })
after(() => db.end())

test('order customer email', async () => {
  assert.equal(await shop.one(db, 'select u.email from orders o join users u on u.id = o.user_id where o.id = 2'), 'grace@example.com')
})

test('order quantity must be positive', async () => {
  await assert.rejects(shop.placeOrder(db, 'ada@example.com', 'mug', 0), { code: '23514' })
})

test('order with coupon', async () => {
  assert.equal(await shop.one(db, 'select coupon_code from orders where id = 4'), 'VIP20')
})

// Planted polluter: places an order and commits it (with FLAKY_PLANTED=0 it cancels it again).
test('place order', async () => {
  const order = await shop.placeOrder(db, 'grace@example.com', 'mug', 1)
  assert.equal(order.total, 1200)
  if (!shop.planted()) assert.equal(await shop.cancelOrder(db, order.id), 1)
})

test('seeded order total', async () => {
  assert.equal(await shop.one(db, 'select total_cents from orders where id = 1'), 4900)
})
