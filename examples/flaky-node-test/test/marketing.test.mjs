// Marketing: the newsletter, campaigns and sign-ups. Planted: 'create welcome coupon' (polluter of
// 'apply welcome coupon' in coupons.test.mjs) and 'signup new customer' (polluter of
// 'register assigns next id' in accounts.test.mjs).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as shop from '../shop.mjs'

let db
before(async () => { db = await shop.connect() })
after(() => db.end())

// Planted polluter: launches the welcome campaign, which leaves coupon WELCOME10 committed (with
// FLAKY_PLANTED=0 it ends the campaign again, deleting the coupon).
test('create welcome coupon', async () => {
  await shop.launchWelcomeCampaign(db)
  assert.equal(await shop.discountedPrice(db, 'mug', 'WELCOME10'), 1080)
  if (!shop.planted()) assert.equal(await shop.deleteCoupon(db, 'WELCOME10'), 1)
})

test('newsletter topics', async () => {
  await shop.subscribe(db, 'fan-news-1@example.com', 'news')
  await shop.subscribe(db, 'fan-news-2@example.com', 'news')
  assert.equal(await shop.one(db, "select count(*)::int from newsletter where topic = 'news' and email like 'fan-news-%'"), 2)
})

// Planted polluter of 'register assigns next id': its committed user takes the next id.
test('signup new customer', async () => {
  await shop.registerUser(db, 'zoe@example.com', 'Zoe')
  assert.equal(await shop.userName(db, 'zoe@example.com'), 'Zoe')
})

test('subscribe newsletter', async () => {
  await shop.subscribe(db, 'fan-deals@example.com', 'deals')
  assert.equal(await shop.one(db, "select topic from newsletter where email = 'fan-deals@example.com'"), 'deals')
})

test('subscribe twice keeps one row', async () => {
  await shop.subscribe(db, 'fan-twice@example.com', 'deals')
  await shop.subscribe(db, 'fan-twice@example.com', 'news')
  assert.equal(await shop.one(db, "select count(*)::int from newsletter where email = 'fan-twice@example.com'"), 1)
})

test('vip coupon discount', async () => {
  assert.equal(await shop.discountedPrice(db, 'mug', 'VIP20'), 960)
})
