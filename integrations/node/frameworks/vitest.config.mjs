// Vitest through @dbsandbox/node: the one line in vitest/setup.mjs. Pool from the command line
// (run_tests.sh runs both --pool=forks and --pool=threads).
export default {
  test: {
    include: ['vitest/*.test.mjs'],
    setupFiles: ['./vitest/setup.mjs'],
    poolOptions: { forks: { maxForks: 2, minForks: 1 }, threads: { maxThreads: 2, minThreads: 1 } }
  }
}
