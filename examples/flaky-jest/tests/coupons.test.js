// Coupons: discounts and the unique code. Planted: 'apply welcome coupon' (victim of
// 'create welcome coupon' in marketing.test.js).
const shop = require('../shop')

let db
beforeAll(async () => { db = await shop.connect() })
afterAll(() => db.end())

// Planted victim: creates WELCOME10 itself and expects the insert to succeed.
test('apply welcome coupon', async () => {
  await shop.createCoupon(db, 'WELCOME10', 10)
  expect(await shop.discountedPrice(db, 'pro-kit', 'WELCOME10')).toBe(4410)
})

test('coupon percent out of range', async () => {
  await expect(shop.createCoupon(db, 'BROKEN150', 150)).rejects.toMatchObject({ code: '23514' })
})

test('create seasonal coupon', async () => {
  await shop.createCoupon(db, 'SUMMER15', 15)
  expect(await shop.discountedPrice(db, 'mug', 'SUMMER15')).toBe(1020)
})

test('duplicate coupon code rejected', async () => {
  await expect(shop.createCoupon(db, 'SPRING5', 50)).rejects.toMatchObject({ code: '23505' })
})

test('seeded coupon discount', async () => {
  expect(await shop.discountedPrice(db, 'pro-kit', 'SPRING5')).toBe(4655)
})

test('unknown coupon gives no price', async () => {
  expect(await shop.discountedPrice(db, 'mug', 'NOPE')).toBeNull()
})
