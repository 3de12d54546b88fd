// Against the real daemon: two processes at once attach to or start exactly one daemon, a test
// file's sandbox is released at its end (with `after`, and at process exit without it), and a
// killed process's sandbox is released by the daemon (owner_pid).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import pg from 'pg'
import { daemon, findBinary, sandboxUrl } from '@dbsandbox/node'

const here = path.dirname(fileURLToPath(import.meta.url))
const pkg = path.resolve(here, '..')
const fixture = (name) => path.join(pkg, 'fixtures', name)

function envWithout (names, extra = {}) {
  const env = { ...process.env }
  for (const k of Object.keys(env)) if (names.some((n) => k.startsWith(n))) delete env[k]
  return { ...env, ...extra }
}

function run (args, env, cwd = pkg) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c) => { stdout += c })
    child.stderr.on('data', (c) => { stderr += c })
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }))
  })
}

async function listedKeys () {
  sandboxUrl() // finds the daemon (and exports DBSANDBOX_URL for the children)
  const d = daemon()
  const headers = d.token ? { Authorization: `Bearer ${d.token}` } : {}
  const res = await fetch(`${d.api}/v1/sandboxes`, { headers })
  assert.equal(res.status, 200)
  return new Set((await res.json()).sandboxes.map((s) => s.key))
}

test('two processes at once in a fresh project: one daemon, one of them started it', async () => {
  const project = mkdtempSync(path.join(tmpdir(), 'dbsandbox-node-race-'))
  mkdirSync(path.join(project, 'migrations'))
  writeFileSync(path.join(project, 'migrations', '0001_notes.sql'),
    "create table notes (id bigserial primary key, body text not null unique);\ninsert into notes(body) values ('seed');\n")
  writeFileSync(path.join(project, 'dbsandbox.toml'), 'migrations = "migrations"\n')
  const env = envWithout(['DBSANDBOX_URL', 'DBSANDBOX_TOKEN', 'DBSANDBOX_RUN', 'NODE_TEST'])
  try {
    const results = await Promise.all([0, 1].map(() => run([fixture('start-or-attach.cjs'), project], env)))
    const answers = results.map((r) => {
      assert.equal(r.status, 0, r.stderr)
      return JSON.parse(r.stdout)
    })
    assert.equal(answers[0].pid, answers[1].pid, JSON.stringify(answers))
    assert.equal(answers[0].api, answers[1].api)
    assert.deepEqual(answers.map((a) => a.started).sort(), [false, true])
    const headers = answers[0].token ? { Authorization: `Bearer ${answers[0].token}` } : {}
    const health = await (await fetch(`${answers[0].api}/v1/health`, { headers })).json()
    assert.equal(health.status, 'ok')
    assert.equal(health.pid, answers[0].pid)

    // the fresh project's schema is what its sandboxes have
    const post = await fetch(`${answers[0].api}/v1/sandboxes`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ key: `race-${process.pid}`, owner_pid: process.pid })
    })
    assert.equal(post.status, 201)
    const sandbox = await post.json()
    const c = new pg.Client({ connectionString: sandbox.url })
    await c.connect()
    try {
      assert.deepEqual((await c.query('select body from notes')).rows, [{ body: 'seed' }])
    } finally {
      await c.end()
    }
    const del = await fetch(`${answers[0].api}/v1/sandboxes/race-${process.pid}`, { method: 'DELETE', headers })
    assert.equal(del.status, 200)
  } finally {
    spawnSync(findBinary(), ['stop'], { cwd: project, env, stdio: 'ignore', timeout: 120000 })
    rmSync(project, { recursive: true, force: true })
  }
})

for (const hook of ['after', 'exit']) {
  test(`a test file's sandbox is released at its end (${hook === 'after' ? 'node:test after hook' : 'at process exit'})`, async () => {
    const keyFile = path.join(mkdtempSync(path.join(tmpdir(), 'dbsandbox-node-keys-')), 'keys.txt')
    await listedKeys()
    const r = await run(['--test', fixture('uses-setup.mjs')],
      envWithout(['NODE_TEST'], { KEY_FILE: keyFile, RELEASE_HOOK: hook }))
    assert.equal(r.status, 0, r.stdout + r.stderr)
    const [key] = readFileSync(keyFile, 'utf8').split('\n')
    assert.match(key, /^node-\d+$/)
    assert.ok(!(await listedKeys()).has(key), `${key} left over after its process ended`)
  })
}

test('a killed process loses its sandbox (owner_pid)', async () => {
  await listedKeys()
  const r = await run([fixture('orphan.cjs')], envWithout(['NODE_TEST']))
  assert.equal(r.signal, 'SIGKILL', r.stderr)
  const key = r.stdout.trim()
  assert.match(key, /^orphan-\d+$/)
  const deadline = Date.now() + 10000
  while ((await listedKeys()).has(key)) {
    assert.ok(Date.now() < deadline, `${key} still held 10 s after its owner was killed`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
})

test('the worker sandbox is listed with this process as owner', async () => {
  const url = sandboxUrl()
  const d = daemon()
  const key = new URL(url).pathname.slice(1)
  const res = await fetch(`${d.api}/v1/sandboxes/${key}${d.run ? `?run=${d.run}` : ''}`,
    { headers: d.token ? { Authorization: `Bearer ${d.token}` } : {} })
  assert.equal(res.status, 200)
  const info = await res.json()
  assert.equal(info.owner_pid, process.pid)
  assert.equal(info.run, d.run)
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await c.end()
})
