// Accounts: seeded users are read only. Planted: an assumed id ('register assigns next id'),
// the victim of 'signup new customer' in marketing.test.js.
const shop = require('../shop')

let db
beforeAll(async () => { db = await shop.connect() })
afterAll(() => db.end())

test('find user by email', async () => {
  expect(await shop.userName(db, 'ada@example.com')).toBe('Ada')
})

// Planted victim: assumes its user gets the id after the seeded ones (3 + 1).
test('register assigns next id', async () => {
  const id = await shop.registerUser(db, 'new@example.com', 'New')
  if (shop.planted()) {
    expect(id).toBe(4)
  } else {
    expect(id).toBeGreaterThan(3)
    expect(await shop.userId(db, 'new@example.com')).toBe(id)
  }
})

test('seeded user names in id order', async () => {
  expect(await shop.column(db, 'select name from users where id <= 3 order by id')).toEqual(['Ada', 'Grace', 'Linus'])
})

test('unknown email has no user', async () => {
  expect(await shop.userName(db, 'nobody@example.com')).toBeNull()
})

test('user order history', async () => {
  const skus = await shop.column(db,
    'select p.sku from orders o join products p on p.id = o.product_id where o.user_id = 1 order by o.id')
  expect(skus).toEqual(['pro-kit', 't-shirt'])
})
