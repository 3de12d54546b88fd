// The cases every Jest and Vitest test file runs (a, b and c are the same file three times, so
// that the workers run them at the same moment). Every file commits the same fixed name at the
// same time as the others: without a sandbox per worker and a reset per test, the second insert
// is a unique violation and the counts are off.
const pg = require('pg')

async function q (sql) {
  const c = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await c.connect()
  try {
    return (await c.query(sql)).rows
  } finally {
    await c.end()
  }
}

/**
 * Defines the cases with the framework's `test` and `expect`.
 * @param {Function} test
 * @param {Function} expect
 * @param {RegExp} keyPattern what the end of this worker's DATABASE_URL must match
 */
function defineCases (test, expect, keyPattern) {
  test('commit a fixed name: id 101, 101 rows', async () => {
    expect(await q("insert into t0(name) values ('alice') returning id::int as id")).toEqual([{ id: 101 }])
    expect(await q('select count(*)::int as n from t0')).toEqual([{ n: 101 }])
  })

  test('the same name again: no collision, id 101', async () => {
    expect(await q("insert into t0(name) values ('alice') returning id::int as id")).toEqual([{ id: 101 }])
  })

  test('a committed delete is undone for the next test', async () => {
    await q('delete from t39 where id > 50')
    expect(await q('select count(*)::int as n from t39')).toEqual([{ n: 50 }])
  })

  test('the key is this worker\'s', () => {
    expect(process.env.DATABASE_URL).toMatch(keyPattern)
  })
}

module.exports = { defineCases }
