// Runs the test files in path order, so that `jest --runInBand` runs the suite in its declared
// order (file order, then in-file order) instead of Jest's default (slowest or failed first).
const Sequencer = require('@jest/test-sequencer').default

class PathSequencer extends Sequencer {
  sort (tests) {
    return [...tests].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  }
}

module.exports = PathSequencer
