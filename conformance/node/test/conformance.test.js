'use strict'
// dbsandbox conformance: node-postgres (pg) and pg-copy-streams through the proxy.
// Numbers in the test names follow the list in conformance/README.md.
//
// node-postgres protocol notes (what the proxy sees):
// * client.query(text) without values: simple Query message; with values, a `name`, or
//   queryMode: 'extended': Parse/Bind/Describe/Execute/Sync in one write (no Flush).
// * Without `pipeline: true` the client waits for ReadyForQuery before sending the next query;
//   with it (pg >= 8.21) every query is written at once, each ending in its own Sync.
// * Cancel: Client.prototype.cancel(client, query) opens a new connection and sends a
//   protocol CancelRequest with the target's processID and secretKey.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { pipeline } = require('node:stream/promises')
const { Readable } = require('node:stream')
const pg = require('pg')
const { from: copyFrom, to: copyTo } = require('pg-copy-streams')
const Cursor = require('pg-cursor')
const { RESET, sandbox, resetStrict, failsWith, names, count, sleep, keyFor, configFor } = require('./helpers')

const code = (c) => (err) => {
  assert.equal(err.code, c, `expected SQLSTATE ${c}, got ${err.code}: ${err.message}`)
  return true
}

// --- (1) code that commits mid-test, then reset -> nothing left ---------------------------

test('01 commit then reset leaves nothing', async (t) => {
  const sb = await sandbox(t)
  const app = await sb.connect()
  await app.query("insert into items(name) values ('autocommitted')")
  await app.query('BEGIN')
  await app.query("insert into items(name) values ('committed-in-tx')")
  await app.query('COMMIT')
  assert.equal(app.txStatus, 'I')
  const other = await sb.connect()
  assert.deepEqual(await names(other), ['autocommitted', 'committed-in-tx'])

  await resetStrict(other)

  assert.equal(await count(other), 0)
  assert.equal(await count(app), 0)
  assert.equal(await count(await sb.connect()), 0)
})

// --- (2) a second connection of the same key sees the first one's writes ------------------

test('02 second connection sees committed writes', async (t) => {
  const sb = await sandbox(t)
  const a = await sb.connect()
  const b = await sb.connect()
  await a.query("insert into items(name) values ('from-a')")
  assert.deepEqual(await names(b), ['from-a'])
  await b.query("update items set qty = 7 where name = 'from-a'")
  assert.deepEqual((await a.query("select qty from items where name = 'from-a'")).rows, [{ qty: 7 }])
})

test('02b second connection sees uncommitted writes (rollback isolation)', async (t) => {
  const sb = await sandbox(t)
  const a = await sb.connect()
  const b = await sb.connect()
  await a.query('BEGIN')
  await a.query("insert into items(name) values ('uncommitted')")
  assert.equal(a.txStatus, 'T')
  assert.deepEqual(await names(b), ['uncommitted'])
  await a.query('ROLLBACK')
  assert.deepEqual(await names(b), [])
})

// --- (3) a caught unique violation, then more statements ----------------------------------

test('03 caught unique violation then more statements', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  await c.query('insert into items(name) values ($1)', ['dup'])
  await failsWith(c, '23505', 'insert into items(name) values ($1)', ['dup'])
  assert.equal(c.txStatus, 'I')
  await c.query("insert into items(name) values ('after')")
  assert.deepEqual(await names(c), ['dup', 'after'])
  assert.deepEqual((await c.query("select id from items where name = 'after'")).rows, [{ id: 3 }])
})

test('03b caught unique violation inside a savepoint', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  await c.query('BEGIN')
  await c.query("insert into items(name) values ('dup')")
  await c.query('SAVEPOINT attempt')
  await failsWith(c, '23505', "insert into items(name) values ('dup')")
  assert.equal(c.txStatus, 'E')
  await c.query('ROLLBACK TO SAVEPOINT attempt')
  assert.equal(c.txStatus, 'T')
  await c.query("insert into items(name) values ('after')")
  await c.query('COMMIT')
  assert.equal(c.txStatus, 'I')
  assert.deepEqual(await names(await sb.connect()), ['dup', 'after'])
})

// --- (4) nested transactions and savepoints at depth 3 ------------------------------------

test('04 savepoints at depth 3: exact survivors and status', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  const observer = await sb.connect()
  const statuses = []
  const q = async (sql) => {
    await c.query(sql)
    statuses.push(c.txStatus)
  }
  await q('BEGIN')
  await q("insert into items(name) values ('top')")
  await q('SAVEPOINT a')
  await q("insert into items(name) values ('in-a')")
  await q('SAVEPOINT b')
  await q("insert into items(name) values ('in-b-undone')")
  await failsWith(c, '23505', "insert into items(name) values ('top')")
  statuses.push(c.txStatus)
  await q('ROLLBACK TO b')
  await q("insert into items(name) values ('in-b-kept')")
  await q('RELEASE a')
  await failsWith(c, '3B001', 'ROLLBACK TO b') // b went with a
  statuses.push(c.txStatus)
  await q('ROLLBACK')
  assert.deepEqual(statuses, ['T', 'T', 'T', 'T', 'T', 'T', 'E', 'T', 'T', 'T', 'E', 'I'])
  assert.deepEqual(await names(observer), [])

  await c.query('BEGIN')
  await c.query("insert into items(name) values ('top')")
  await c.query('SAVEPOINT a')
  await c.query("insert into items(name) values ('in-a')")
  await c.query('SAVEPOINT b')
  await c.query("insert into items(name) values ('in-b-undone')")
  await c.query('ROLLBACK TO b')
  await c.query("insert into items(name) values ('in-b-kept')")
  await c.query('RELEASE a')
  const commit = await c.query('COMMIT')
  assert.equal(commit.command, 'COMMIT')
  assert.equal(c.txStatus, 'I')
  assert.deepEqual(await names(observer), ['top', 'in-a', 'in-b-kept'])
})

test('04c committed savepoints gone after reset', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  for (const sql of ['BEGIN', 'SAVEPOINT a', 'SAVEPOINT b', "insert into items(name) values ('deep')", 'RELEASE a', 'COMMIT']) {
    await c.query(sql)
  }
  assert.deepEqual(await names(await sb.connect()), ['deep'])
  await resetStrict(c)
  assert.equal(await count(c), 0)
  assert.equal(c.txStatus, 'I')
})

// --- (5) prepared statements with the same name on two connections ------------------------

test('05 same statement name s1 on two connections', async (t) => {
  const sb = await sandbox(t)
  const a = await sb.connect()
  const b = await sb.connect()
  for (let i = 0; i < 3; i++) {
    // the first use sends Parse "s1"; later ones only Bind/Execute against it
    const ra = await a.query({ name: 's1', text: 'select $1::int * 2 as v', values: [20 + i] })
    const rb = await b.query({ name: 's1', text: "select 'b:' || $1::text as v", values: [`x${i}`] })
    assert.deepEqual(ra.rows, [{ v: 2 * (20 + i) }])
    assert.deepEqual(rb.rows, [{ v: `b:x${i}` }])
  }
})

test('05b same SQL PREPARE name on two connections', async (t) => {
  const sb = await sandbox(t)
  const a = await sb.connect()
  const b = await sb.connect()
  await a.query('PREPARE s1(int) AS select $1 + 1 as v')
  await b.query("PREPARE s1(text) AS select 'b:' || $1 as v")
  assert.deepEqual((await a.query('EXECUTE s1(41)')).rows, [{ v: 42 }])
  assert.deepEqual((await b.query("EXECUTE s1('x')")).rows, [{ v: 'b:x' }])
  await a.query('DEALLOCATE s1')
  await failsWith(a, '26000', 'EXECUTE s1(1)')
  assert.deepEqual((await b.query("EXECUTE s1('y')")).rows, [{ v: 'b:y' }])
})

// --- (6) pipelined extended-protocol queries ---------------------------------------------

test('06 pipelined extended queries, one failing', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect({ pipeline: true })
  // all six are written before the first answer is read; each ends with its own Sync
  const results = await Promise.allSettled([
    c.query('insert into items(name) values ($1) returning id', ['p1']),
    c.query('insert into items(name) values ($1) returning id', ['p2']),
    c.query('insert into items(name) values ($1) returning id', ['p1']),
    c.query('insert into items(name, qty) values ($1, $2) returning id', ['p3', 5]),
    c.query('select count(*)::int as n, sum(qty)::int as s from items where name like $1', ['p%']),
    c.query({ text: 'select $1::text as echo', values: ['last'] }),
  ])
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']
  )
  assert.equal(results[2].reason.code, '23505')
  assert.deepEqual(results[0].value.rows, [{ id: 1 }])
  assert.deepEqual(results[1].value.rows, [{ id: 2 }])
  assert.deepEqual(results[3].value.rows, [{ id: 4 }]) // id 3 was used by the failed insert
  assert.deepEqual(results[4].value.rows, [{ n: 3, s: 5 }])
  assert.deepEqual(results[5].value.rows, [{ echo: 'last' }])
  assert.equal(c.txStatus, 'I')
})

// --- (7) COPY in and out -----------------------------------------------------------------

test('07 COPY in and out', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  const lines = []
  for (let i = 1; i <= 500; i++) lines.push(`c${i}\t${i}\n`)
  const ingest = c.query(copyFrom('COPY items(name, qty) FROM STDIN'))
  await pipeline(Readable.from(lines), ingest)
  assert.equal(ingest.rowCount, 500)
  assert.deepEqual((await c.query('select count(*)::int as n, sum(qty)::int as s from items')).rows, [{ n: 500, s: 125250 }])

  const chunks = []
  const out = c.query(copyTo('COPY (select id, name, qty from items where id <= 3 order by id) TO STDOUT'))
  for await (const chunk of out) chunks.push(chunk)
  assert.equal(Buffer.concat(chunks).toString(), '1\tc1\t1\n2\tc2\t2\n3\tc3\t3\n')
  assert.equal(c.txStatus, 'I')
})

test('07b COPY in failure, then the connection works', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  await c.query("insert into items(name) values ('taken')")
  await assert.rejects(pipeline(Readable.from(['fresh\n', 'taken\n']), c.query(copyFrom('COPY items(name) FROM STDIN'))), code('23505'))
  assert.deepEqual(await names(c), ['taken'])
  assert.equal(c.txStatus, 'I')
})

// --- (8) LISTEN/NOTIFY between two connections of one key --------------------------------

async function waitFor(client, n, ms) {
  const deadline = Date.now() + ms
  while (client.notifications.length < n && Date.now() < deadline) await sleep(20)
}

test('08 NOTIFY delivered at commit, not before, not on rollback', async (t) => {
  const sb = await sandbox(t)
  const listener = await sb.connect()
  const notifier = await sb.connect()
  await listener.query('LISTEN jobs')

  await notifier.query('BEGIN')
  await notifier.query("NOTIFY jobs, 'at-commit'")
  await sleep(500)
  assert.deepEqual(listener.notifications, []) // not before commit
  await notifier.query('COMMIT')
  await waitFor(listener, 1, 5000)
  assert.deepEqual(listener.notifications, [['jobs', 'at-commit']])

  await notifier.query('BEGIN')
  await notifier.query("NOTIFY jobs, 'rolled-back'")
  await notifier.query('ROLLBACK')
  await notifier.query("NOTIFY jobs, 'outside-tx'")
  await waitFor(listener, 2, 5000)
  await sleep(300)
  assert.deepEqual(listener.notifications, [['jobs', 'at-commit'], ['jobs', 'outside-tx']])

  await listener.query('UNLISTEN jobs')
  await notifier.query("NOTIFY jobs, 'after-unlisten'")
  await sleep(500)
  assert.equal(listener.notifications.length, 2)
})

// --- (9) a statement that cannot run in a transaction ------------------------------------

test('09 VACUUM refused, naming database isolation', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  const err = await failsWith(c, '25001', 'VACUUM items')
  assert.match(err.message, /database/)
  assert.equal(c.txStatus, 'I')
  assert.deepEqual((await c.query('select 1 as one')).rows, [{ one: 1 }])
})

test('09b PREPARE TRANSACTION refused', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  await c.query('BEGIN')
  await failsWith(c, '0A000', "PREPARE TRANSACTION 'x'")
  await c.query('ROLLBACK')
  assert.deepEqual((await c.query('select 1 as one')).rows, [{ one: 1 }])
})

// --- (10) id = 1 after reset --------------------------------------------------------------

const firstId = async (c, sql) => (await c.query(sql)).rows[0].id

test('10 ids restart after reset', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  assert.equal(await firstId(c, 'insert into empty_table(v) values (1) returning id'), 1)
  assert.equal(await firstId(c, 'insert into empty_table(v) values (2) returning id'), 2)
  assert.equal(await firstId(c, "insert into t0(name) values ('new') returning id"), '101') // bigserial: a string
  await resetStrict(c)
  assert.equal(await firstId(c, 'insert into empty_table(v) values (1) returning id'), 1)
  assert.equal(await firstId(c, "insert into t0(name) values ('new') returning id"), '101')
  assert.equal(await count(c, 't0'), 101)
})

const SHARED_KEY = 'node_id_one_consecutive'
for (const which of ['first', 'second']) {
  test(`10b id = 1 in two consecutive tests on one key (${which})`, async (t) => {
    const sb = await sandbox(t, SHARED_KEY)
    const c = await sb.connect()
    assert.equal(await firstId(c, 'insert into empty_table(v) values (1) returning id'), 1)
    assert.equal(await firstId(c, "insert into t0(name) values ('consecutive') returning id"), '101')
  })
}

test('10d the last connection closing resets', async (t) => {
  const sb = await sandbox(t)
  const first = new pg.Client(sb.config())
  await first.connect()
  await first.query("insert into items(name) values ('left-behind')")
  await first.query('insert into empty_table(v) values (1)')
  await first.end()
  const c = await sb.connect()
  assert.equal(await count(c), 0)
  assert.equal(await firstId(c, 'insert into empty_table(v) values (1) returning id'), 1)
})

// --- (11) cancel of a long query ---------------------------------------------------------

test('11 cancel of pg_sleep(30) via CancelRequest', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  await c.query("insert into items(name) values ('before-cancel')")
  const started = Date.now()
  const sleeping = new pg.Query('select pg_sleep(30)')
  const done = new Promise((resolve) => {
    sleeping.on('error', resolve)
    sleeping.on('end', () => resolve(null))
  })
  c.query(sleeping)
  await sleep(1000)
  // node-postgres' cancel: a fresh Client opens a connection and sends CancelRequest(pid, secret)
  new pg.Client(sb.config()).cancel(c, sleeping)
  const err = await done
  assert.ok(err, 'pg_sleep(30) finished instead of being cancelled')
  assert.equal(err.code, '57014', err.message)
  assert.ok(Date.now() - started < 5000, `cancel took ${Date.now() - started} ms`)
  assert.equal(c.txStatus, 'I')
  assert.deepEqual((await c.query('select 1 as one')).rows, [{ one: 1 }])
  assert.deepEqual(await names(c), ['before-cancel'])
})

// --- (12) a failed transaction answers 25P02 until ROLLBACK -------------------------------

test('12 failed transaction answers 25P02 until ROLLBACK', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  await c.query('BEGIN')
  await c.query("insert into items(name) values ('x')")
  await failsWith(c, '23505', "insert into items(name) values ('x')")
  assert.equal(c.txStatus, 'E')
  await failsWith(c, '25P02', 'select 1')
  await failsWith(c, '25P02', 'select $1::int', [1])
  await failsWith(c, '25P02', { name: 'later', text: 'select 2' })
  assert.equal(c.txStatus, 'E')
  await c.query('ROLLBACK')
  assert.equal(c.txStatus, 'I')
  assert.equal(await count(c), 0)
})

test('12b COMMIT of a failed transaction answers ROLLBACK', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  await c.query('BEGIN')
  await c.query("insert into items(name) values ('x')")
  await failsWith(c, '23505', "insert into items(name) values ('x')")
  const res = await c.query('COMMIT')
  assert.equal(res.command, 'ROLLBACK')
  assert.equal(c.txStatus, 'I')
  assert.equal(await count(c), 0)
})

// --- (13) in-band reset over simple and extended protocol --------------------------------

test('13 reset over the simple protocol', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  await c.query("insert into items(name) values ('gone')")
  await resetStrict(c) // no values: a simple Query message
  assert.equal(await count(c), 0)
})

test('13b reset over the extended protocol (unnamed and named)', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect()
  await c.query("insert into items(name) values ('gone')")
  await resetStrict(c, { queryMode: 'extended' })
  assert.equal(await count(c), 0)
  for (let i = 0; i < 2; i++) {
    await c.query("insert into items(name) values ('gone')")
    await resetStrict(c, { name: 'reset' })
    assert.equal(await count(c), 0)
  }
})

test('13c reset in a pipeline', async (t) => {
  const sb = await sandbox(t)
  const c = await sb.connect({ pipeline: true })
  await c.query("insert into items(name) values ('gone')")
  const [reset, after] = await Promise.all([
    c.query({ text: RESET, queryMode: 'extended' }),
    c.query('select count(*)::int as n from items'),
  ])
  assert.deepEqual(reset.rows, [{ dbsandbox_reset: 'ok' }])
  assert.deepEqual(after.rows, [{ n: 0 }])
})

// --- (25) a portal read in parts does not hold the key ---------------------------------------

// pg-cursor reads with Execute(rows) + Flush on the unnamed portal and waits before its Sync:
// the key's other connections must be served meanwhile, and their own unnamed portals must not
// replace the cursor's.
test('25 a cursor read in parts (pg-cursor) does not hold the key', async (t) => {
  const sb = await sandbox(t)
  const reader = await sb.connect()
  const writer = await sb.connect()
  const cursor = reader.query(new Cursor('select g from generate_series(1, 10) g'))
  const read = (n) =>
    new Promise((resolve, reject) => cursor.read(n, (err, rows) => (err ? reject(err) : resolve(rows.map((r) => r.g)))))
  const answered = (promise) => {
    let timer
    const limit = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer within 10 s: the key is held by the cursor')), 10000)
    })
    return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
  }
  assert.deepEqual(await read(3), [1, 2, 3])
  await answered(writer.query({ text: 'insert into items(name) values ($1)', values: ['between'] }))
  assert.deepEqual(await read(3), [4, 5, 6])
  assert.deepEqual((await answered(writer.query({ text: 'select $1::int as n', values: [7] }))).rows, [{ n: 7 }])
  assert.deepEqual(await read(10), [7, 8, 9, 10])
  await new Promise((resolve, reject) => cursor.close((err) => (err ? reject(err) : resolve())))
  assert.deepEqual(await names(reader), ['between'])
})

test('key helper stays within the key rules', () => {
  const long = keyFor('x'.repeat(100))
  assert.equal(long.length, 48)
  assert.match(long, /^[A-Za-z0-9_-]{1,48}$/)
  assert.notEqual(keyFor('a'.repeat(60) + '1'), keyFor('a'.repeat(60) + '2'))
  assert.equal(configFor('k').database, 'k')
})
