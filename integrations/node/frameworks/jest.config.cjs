// Jest through @dbsandbox/node: two workers, the one line in jest/setup.cjs.
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/jest/*.test.cjs'],
  setupFilesAfterEnv: ['<rootDir>/jest/setup.cjs'],
  maxWorkers: 2
}
