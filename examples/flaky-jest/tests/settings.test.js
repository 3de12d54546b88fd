// Settings. Planted: 'feature x banner shown' (brittle: it needs the row its state-setter
// 'enable feature x' in admin.test.js commits).
const shop = require('../shop')

let db
beforeAll(async () => { db = await shop.connect() })
afterAll(() => db.end())

// Planted brittle test: expects feature_x to be on without switching it on (with FLAKY_PLANTED=0 it
// switches it on itself).
test('feature x banner shown', async () => {
  if (!shop.planted()) await shop.setSetting(db, 'feature_x', 'on')
  expect(await shop.setting(db, 'feature_x')).toBe('on')
})

test('gross price includes tax', async () => {
  expect(await shop.grossPrice(db, 'mug')).toBe(1440)
})

test('set custom setting', async () => {
  await shop.setSetting(db, 'settings-test-theme', 'dark')
  expect(await shop.setting(db, 'settings-test-theme')).toBe('dark')
})

test('tax rate is twenty percent', async () => {
  expect(await shop.setting(db, 'tax_rate_percent')).toBe('20')
})

test('unknown setting is none', async () => {
  expect(await shop.setting(db, 'no-such-setting')).toBeNull()
})
