// Admin: the audit log, settings and the dashboard. Planted: 'enable feature x', the state-setter
// of 'feature x banner shown' (settings.test.js), and 'count seeded orders', the victim of
// 'place order' (orders.test.js).
const shop = require('../shop')

let db
beforeAll(async () => { db = await shop.connect() })
afterAll(() => db.end())

test('audit log keeps actions in order', async () => {
  await shop.audit(db, 'admin-order', 'login')
  await shop.audit(db, 'admin-order', 'export')
  expect(await shop.auditActions(db, 'admin-order')).toEqual(['login', 'export'])
})

test('audit log records action', async () => {
  await shop.audit(db, 'admin-record', 'refund')
  expect(await shop.auditActions(db, 'admin-record')).toEqual(['refund'])
})

// Planted victim (the dashboard's order count): counts every order and expects the 4 seeded ones.
test('count seeded orders', async () => {
  expect(await shop.one(db, 'select count(*)::int from orders')).toBe(4)
})

test('currency is euro', async () => {
  expect(await shop.setting(db, 'currency')).toBe('EUR')
})

// Planted state-setter: the row 'feature x banner shown' needs and does not create itself.
test('enable feature x', async () => {
  await shop.setSetting(db, 'feature_x', 'on')
  expect(await shop.setting(db, 'feature_x')).toBe('on')
})

test('maintenance mode is off', async () => {
  expect(await shop.setting(db, 'maintenance')).toBe('off')
})
