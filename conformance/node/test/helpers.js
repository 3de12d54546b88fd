'use strict'
// Helpers for the dbsandbox conformance suite (node-postgres).
//
// Run under `dbsandbox run`, which exports DBSANDBOX_HOST and DBSANDBOX_PORT. The database
// name is the sandbox key; every test uses its own key ('node_' + the test name) and resets
// its sandbox in-band (SELECT dbsandbox_reset()) before and after it runs.

const crypto = require('node:crypto')
const pg = require('pg')

const RESET = 'SELECT dbsandbox_reset()'

function keyFor(name) {
  let key = 'node_' + name.replace(/[^A-Za-z0-9_-]/g, '_')
  if (key.length > 48) {
    key = key.slice(0, 39) + '_' + crypto.createHash('sha1').update(name).digest('hex').slice(0, 8)
  }
  return key
}

function configFor(key, extra = {}) {
  const host = process.env.DBSANDBOX_HOST
  const port = process.env.DBSANDBOX_PORT
  if (!host || !port) {
    throw new Error(
      'DBSANDBOX_HOST/DBSANDBOX_PORT are not set: run this suite through ' +
        '`dbsandbox run --migrations conformance/migrations -- npm test` (see conformance/run.sh)'
    )
  }
  return { host, port: Number(port), user: 'dbsandbox', database: key, connectionTimeoutMillis: 10000, ...extra }
}

// A connected client whose `txStatus` is the status byte of the last ReadyForQuery
// ('I' idle, 'T' in a transaction, 'E' failed): node-postgres does not expose it otherwise.
async function connect(key, extra = {}) {
  const client = new pg.Client(configFor(key, extra))
  client.txStatus = null
  client.readyCount = 0
  client.connection.on('readyForQuery', (msg) => {
    client.txStatus = msg.status
    client.readyCount++
  })
  client.notifications = []
  client.on('notification', (n) => client.notifications.push([n.channel, n.payload]))
  await client.connect()
  return client
}

// The in-band reset, tolerant of one thing only: a proxy without the rollback engine passes the
// statement to PostgreSQL, which answers 42883 (no such function). Then each key is a fresh
// database anyway; the tests that need a real reset call resetStrict.
async function resetLenient(key) {
  const c = await connect(key)
  try {
    await c.query(RESET)
  } catch (err) {
    if (err.code !== '42883') throw err
  } finally {
    await c.end()
  }
}

async function resetStrict(client, extra = {}) {
  const res = await client.query({ text: RESET, ...extra })
  if (res.fields.map((f) => f.name).join(',') !== 'dbsandbox_reset' || JSON.stringify(res.rows) !== '[{"dbsandbox_reset":"ok"}]') {
    throw new Error(`unexpected reset answer: ${JSON.stringify(res.fields.map((f) => f.name))} ${JSON.stringify(res.rows)}`)
  }
}

// One test's sandbox: `const sb = await sandbox(t)` is the one line a test needs.
async function sandbox(t, key = keyFor(t.name)) {
  await resetLenient(key)
  const clients = []
  const sb = {
    key,
    config: (extra) => configFor(key, extra),
    async connect(extra) {
      const c = await connect(key, extra)
      clients.push(c)
      return c
    },
  }
  t.after(async () => {
    for (const c of clients) await c.end().catch(() => {})
    await resetLenient(key)
  })
  return sb
}

// Run a query that must fail with `sqlstate`; return once the ReadyForQuery after the error has
// arrived. (node-postgres rejects the promise at the ErrorResponse, before ReadyForQuery, so
// txStatus read right after a rejection would still be the old status.)
async function failsWith(client, sqlstate, ...queryArgs) {
  const before = client.readyCount
  let error = null
  try {
    await client.query(...queryArgs)
  } catch (err) {
    error = err
  }
  if (!error) throw new Error(`expected SQLSTATE ${sqlstate}, but the query succeeded: ${JSON.stringify(queryArgs)}`)
  if (error.code !== sqlstate) throw new Error(`expected SQLSTATE ${sqlstate}, got ${error.code}: ${error.message}`)
  const deadline = Date.now() + 5000
  while (client.readyCount === before && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
  if (client.readyCount === before) throw new Error('no ReadyForQuery after the error')
  return error
}

async function names(client, table = 'items') {
  return (await client.query(`select name from ${table} order by id`)).rows.map((r) => r.name)
}

async function count(client, table = 'items') {
  return Number((await client.query(`select count(*) from ${table}`)).rows[0].count)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

module.exports = { RESET, keyFor, configFor, connect, resetLenient, resetStrict, failsWith, sandbox, names, count, sleep }
