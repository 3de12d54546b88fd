// The binary comes from the platform package (@dbsandbox/<os>-<cpu>, an optional dependency of
// @dbsandbox/node, the esbuild pattern) before PATH, and DBSANDBOX_BIN before both. The packages
// are laid out in a scratch node_modules as npm installs them (copies, not links).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, mkdirSync, writeFileSync, chmodSync, rmSync, realpathSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { PLATFORM_PACKAGE } from '@dbsandbox/node'

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const project = realpathSync(mkdtempSync(path.join(tmpdir(), 'dbsandbox-node-platform-')))
after(() => rmSync(project, { recursive: true, force: true }))

function executable (file) {
  mkdirSync(path.dirname(file), { recursive: true })
  writeFileSync(file, '#!/bin/sh\necho fake\n')
  chmodSync(file, 0o755)
  return file
}

const helper = path.join(project, 'node_modules', '@dbsandbox', 'node')
cpSync(path.join(pkg, 'src'), path.join(helper, 'src'), { recursive: true })
cpSync(path.join(pkg, 'package.json'), path.join(helper, 'package.json'))
const platformDir = path.join(project, 'node_modules', ...PLATFORM_PACKAGE.split('/'))
mkdirSync(platformDir, { recursive: true })
writeFileSync(path.join(platformDir, 'package.json'), JSON.stringify({ name: PLATFORM_PACKAGE, version: '0.1.0' }))
const fromPackage = executable(path.join(platformDir, 'bin', 'dbsandbox'))
const onPath = executable(path.join(project, 'path-bin', 'dbsandbox'))

function findBinary (env) {
  const r = spawnSync(process.execPath, ['-e', "console.log(require('@dbsandbox/node').findBinary(JSON.parse(process.argv[1])))", JSON.stringify(env)],
    { cwd: project, encoding: 'utf8', env: { PATH: process.env.PATH } })
  assert.equal(r.status, 0, r.stderr)
  return r.stdout.trim()
}

test('the platform package binary comes before PATH', () => {
  assert.equal(findBinary({ PATH: path.dirname(onPath) }), fromPackage)
})

test('DBSANDBOX_BIN comes before the platform package', () => {
  assert.equal(findBinary({ PATH: '', DBSANDBOX_BIN: onPath }), onPath)
})

test('without the platform package, PATH is used', () => {
  rmSync(platformDir, { recursive: true, force: true })
  assert.equal(findBinary({ PATH: path.dirname(onPath) }), onPath)
})
