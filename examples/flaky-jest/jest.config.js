// The planted suite's Jest settings: Node environment, the tests in tests/, files in path order.
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/tests/*.test.js'],
  testSequencer: '<rootDir>/path-sequencer.js'
}
