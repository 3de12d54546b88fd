// The code under test: a tiny shop that opens, commits and closes its own pool on DATABASE_URL.
import pg from 'pg'

export async function signUp (email, name) {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 })
  try {
    const { rows } = await pool.query('insert into customers(email, name) values ($1, $2) returning id::int as id', [email, name])
    return rows[0].id
  } finally {
    await pool.end()
  }
}

export async function placeOrder (email, sku, totalCents) {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  try {
    await client.query('BEGIN')
    const { rows: [customer] } = await client.query('select id from customers where email = $1', [email])
    await client.query('update stock set quantity = quantity - 1 where sku = $1', [sku])
    const { rows: [order] } = await client.query(
      'insert into orders(customer_id, total_cents) values ($1, $2) returning id::int as id', [customer.id, totalCents])
    await client.query('COMMIT')
    return order.id
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    await client.end()
  }
}
