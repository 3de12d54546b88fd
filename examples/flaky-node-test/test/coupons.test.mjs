// Coupons: discounts and the unique code. Planted: 'apply welcome coupon' (victim of
// 'create welcome coupon' in marketing.test.mjs).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as shop from '../shop.mjs'

let db
before(async () => { db = await shop.connect() })
after(() => db.end())

// Planted victim: creates WELCOME10 itself and expects the insert to succeed.
test('apply welcome coupon', async () => {
  await shop.createCoupon(db, 'WELCOME10', 10)
  assert.equal(await shop.discountedPrice(db, 'pro-kit', 'WELCOME10'), 4410)
})

test('coupon percent out of range', async () => {
  await assert.rejects(shop.createCoupon(db, 'BROKEN150', 150), { code: '23514' })
})

test('create seasonal coupon', async () => {
  await shop.createCoupon(db, 'SUMMER15', 15)
  assert.equal(await shop.discountedPrice(db, 'mug', 'SUMMER15'), 1020)
})

test('duplicate coupon code rejected', async () => {
  await assert.rejects(shop.createCoupon(db, 'SPRING5', 50), { code: '23505' })
})

test('seeded coupon discount', async () => {
  assert.equal(await shop.discountedPrice(db, 'pro-kit', 'SPRING5'), 4655)
})

test('unknown coupon gives no price', async () => {
  assert.equal(await shop.discountedPrice(db, 'mug', 'NOPE'), null)
})
