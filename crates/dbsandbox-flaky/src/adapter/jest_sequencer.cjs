// dbsandbox flaky's Jest test sequencer (--testSequencer=<this file>): runs exactly the test
// files listed in $DBSANDBOX_FLAKY_JEST_FILES (one absolute path a line), in that order; without
// it, every file sorted by path (the order the hunter calls "declared"). Needs nothing but Node.
const fs = require('node:fs')

const real = (p) => {
  try {
    return fs.realpathSync(p)
  } catch {
    return p
  }
}

class DbsandboxFlakySequencer {
  sort(tests) {
    const listFile = process.env.DBSANDBOX_FLAKY_JEST_FILES
    if (!listFile) {
      return [...tests].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    }
    const wanted = fs
      .readFileSync(listFile, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map(real)
    const byPath = new Map(tests.map((test) => [real(test.path), test]))
    return wanted.filter((p) => byPath.has(p)).map((p) => byPath.get(p))
  }

  shard(tests) {
    return tests
  }

  cacheResults() {}

  allFailedTests(tests) {
    return tests
  }
}

module.exports = DbsandboxFlakySequencer
