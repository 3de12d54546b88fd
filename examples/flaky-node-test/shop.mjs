// The shop under test in the planted node --test suite for `dbsandbox flaky`: every function runs
// on an autocommit pg client connected to DATABASE_URL, so what a test writes stays committed for
// the tests after it (exactly what order-dependent tests are made of).
import pg from 'pg'

export async function connect () {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  return client
}

// Whether the planted faults are on: FLAKY_PLANTED=0 switches every one of them off.
export const planted = () => process.env.FLAKY_PLANTED !== '0'

export async function one (db, sql, params = []) {
  const { rows } = await db.query({ text: sql, values: params, rowMode: 'array' })
  return rows.length ? rows[0][0] : null
}

export async function column (db, sql, params = []) {
  const { rows } = await db.query({ text: sql, values: params, rowMode: 'array' })
  return rows.map(row => row[0])
}

export const registerUser = (db, email, name) =>
  one(db, 'insert into users (email, name) values ($1, $2) returning id', [email, name])
export const userName = (db, email) => one(db, 'select name from users where email = $1', [email])
export const userId = (db, email) => one(db, 'select id from users where email = $1', [email])
export const productPrice = (db, sku) => one(db, 'select price_cents from products where sku = $1', [sku])
export const addProduct = (db, sku, name, priceCents, stock) =>
  one(db, 'insert into products (sku, name, price_cents, stock) values ($1, $2, $3, $4) returning id',
    [sku, name, priceCents, stock])
export const changeStock = (db, sku, delta) =>
  one(db, 'update products set stock = stock + $2 where sku = $1 returning stock', [sku, delta])
export const stock = (db, sku) => one(db, 'select stock from products where sku = $1', [sku])

export async function discontinueProduct (db, sku) {
  return (await db.query('delete from products where sku = $1', [sku])).rowCount
}

export async function createCoupon (db, code, percentOff) {
  await db.query('insert into coupons (code, percent_off) values ($1, $2)', [code, percentOff])
}

// The welcome campaign's coupon, created or brought back to 10 % (idempotent, as an admin action would be).
export async function launchWelcomeCampaign (db) {
  await db.query(`insert into coupons (code, percent_off) values ('WELCOME10', 10)
                  on conflict (code) do update set percent_off = excluded.percent_off`)
}

export async function deleteCoupon (db, code) {
  return (await db.query('delete from coupons where code = $1', [code])).rowCount
}

// The product's price after the coupon, or null when either is unknown.
export const discountedPrice = (db, sku, code) =>
  one(db, `select (p.price_cents * (100 - c.percent_off) / 100)::int
           from products p, coupons c where p.sku = $1 and c.code = $2`, [sku, code])

// Places an order for a product and returns { id, total }.
export async function placeOrder (db, email, sku, quantity) {
  const { rows } = await db.query(
    `insert into orders (user_id, product_id, quantity, total_cents)
     select u.id, p.id, $3, p.price_cents * $3 from users u, products p
     where u.email = $1 and p.sku = $2 returning id, total_cents as total`, [email, sku, quantity])
  return rows[0]
}

export async function cancelOrder (db, orderId) {
  return (await db.query('delete from orders where id = $1', [orderId])).rowCount
}

export const setting = (db, key) => one(db, 'select value from settings where key = $1', [key])

export async function setSetting (db, key, value) {
  await db.query(`insert into settings (key, value) values ($1, $2)
                  on conflict (key) do update set value = excluded.value`, [key, value])
}

// A price in cents as the shop prints it, in the configured currency.
export async function formatPrice (db, cents) {
  const currency = await setting(db, 'currency')
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')} ${currency}`
}

export const grossPrice = (db, sku) =>
  one(db, `select (p.price_cents * (100 + s.value::int) / 100)::int
           from products p, settings s where p.sku = $1 and s.key = 'tax_rate_percent'`, [sku])

export async function addReview (db, sku, email, rating, body) {
  await db.query(`insert into reviews (product_id, user_id, rating, body)
                  select p.id, u.id, $3, $4 from products p, users u where p.sku = $1 and u.email = $2`,
  [sku, email, rating, body])
}

export const averageRating = (db, sku) =>
  one(db, `select avg(r.rating)::float8 from reviews r join products p on p.id = r.product_id
           where p.sku = $1`, [sku])

export async function subscribe (db, email, topic) {
  await db.query('insert into newsletter (email, topic) values ($1, $2) on conflict (email) do nothing', [email, topic])
}

export async function audit (db, actor, action) {
  await db.query('insert into audit_log (actor, action) values ($1, $2)', [actor, action])
}

export const auditActions = (db, actor) => column(db, 'select action from audit_log where actor = $1 order by id', [actor])

