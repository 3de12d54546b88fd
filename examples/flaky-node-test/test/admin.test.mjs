// Admin: the audit log, settings and the dashboard. Planted: 'enable feature x', the state-setter
// of 'feature x banner shown' (settings.test.mjs), and 'count seeded orders', the victim of
// 'place order' (orders.test.mjs).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as shop from '../shop.mjs'

let db
before(async () => { db = await shop.connect() })
after(() => db.end())

test('audit log keeps actions in order', async () => {
  await shop.audit(db, 'admin-order', 'login')
  await shop.audit(db, 'admin-order', 'export')
  assert.deepEqual(await shop.auditActions(db, 'admin-order'), ['login', 'export'])
})

test('audit log records action', async () => {
  await shop.audit(db, 'admin-record', 'refund')
  assert.deepEqual(await shop.auditActions(db, 'admin-record'), ['refund'])
})

// Planted victim (the dashboard's order count): counts every order and expects the 4 seeded ones.
test('count seeded orders', async () => {
  assert.equal(await shop.one(db, 'select count(*)::int from orders'), 4)
})

test('currency is euro', async () => {
  assert.equal(await shop.setting(db, 'currency'), 'EUR')
})

// Planted state-setter: the row 'feature x banner shown' needs and does not create itself.
test('enable feature x', async () => {
  await shop.setSetting(db, 'feature_x', 'on')
  assert.equal(await shop.setting(db, 'feature_x'), 'on')
})

test('maintenance mode is off', async () => {
  assert.equal(await shop.setting(db, 'maintenance'), 'off')
})
