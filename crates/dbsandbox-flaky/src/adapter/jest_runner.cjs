// dbsandbox flaky's Jest test runner (--testRunner=<this file>): jest-circus, the project's own,
// with each file's tests reordered to the order $DBSANDBOX_FLAKY_JEST_ORDER gives (a JSON object:
// absolute file path -> list of title paths). Each describe block's children are put in the order
// of their first wanted test, so any order that keeps each describe block's tests together runs
// exactly; tests not wanted keep their place at the end (the name pattern skips them).
const fs = require('node:fs')
const path = require('node:path')
const { createRequire } = require('node:module')

const ROOT = 'ROOT_DESCRIBE_BLOCK'

function circusRunner(rootDir) {
  const tried = []
  for (const from of [path.join(rootDir, 'package.json'), path.join(process.cwd(), 'package.json')]) {
    const require = createRequire(from)
    for (const via of [null, 'jest-config', 'jest-cli', 'jest', '@jest/core']) {
      try {
        const base = via ? createRequire(require.resolve(via)) : require
        return base('jest-circus/runner')
      } catch (error) {
        tried.push(`${from} via ${via ?? 'itself'}: ${error.message.split('\n')[0]}`)
      }
    }
  }
  throw new Error(`dbsandbox flaky cannot find jest-circus/runner:\n${tried.join('\n')}`)
}

function titlesOf(test) {
  const titles = []
  for (let node = test; node && node.name !== ROOT; node = node.parent) titles.unshift(node.name)
  return titles
}

function reorder(block, rank) {
  const first = new Map()
  const keyOf = (child) => {
    if (first.has(child)) return first.get(child)
    let key = Infinity
    if (child.type === 'test') {
      key = rank.get(JSON.stringify(titlesOf(child))) ?? Infinity
    } else {
      for (const grandchild of child.children) key = Math.min(key, keyOf(grandchild))
    }
    first.set(child, key)
    return key
  }
  const keyed = block.children.map((child, i) => [keyOf(child), i, child])
  keyed.sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : a[0] - b[0]))
  block.children = keyed.map(([, , child]) => child)
  for (const child of block.children) if (child.type === 'describeBlock') reorder(child, rank)
}

module.exports = async function dbsandboxFlakyRunner(globalConfig, config, environment, runtime, testPath, ...rest) {
  const circus = circusRunner(config.rootDir)
  const orderFile = process.env.DBSANDBOX_FLAKY_JEST_ORDER
  const wanted = orderFile ? JSON.parse(fs.readFileSync(orderFile, 'utf8')) : {}
  const real = (p) => {
    try {
      return fs.realpathSync(p)
    } catch {
      return p
    }
  }
  const titles = Object.entries(wanted).find(([file]) => real(file) === real(testPath))?.[1]
  if (titles) {
    const rank = new Map()
    titles.forEach((t, i) => {
      const key = JSON.stringify(t)
      if (!rank.has(key)) rank.set(key, i)
    })
    const original = environment.handleTestEvent
    environment.handleTestEvent = function (event, state) {
      if (event.name === 'run_start') reorder(state.rootDescribeBlock, rank)
      return original ? original.call(this, event, state) : undefined
    }
  }
  const run = circus.default ?? circus
  return run(globalConfig, config, environment, runtime, testPath, ...rest)
}
