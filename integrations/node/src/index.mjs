// ESM entry of @dbsandbox/node: the same functions as the CommonJS entry (src/index.cjs).
import dbsandbox from './index.cjs'

export const {
  sandboxUrl,
  resetSandbox,
  setup,
  workerKey,
  DbsandboxNotRunningError,
  RESET_STATEMENT,
  DATABASE_ISOLATION_QUERY,
  NOT_RUNNING_MESSAGE
} = dbsandbox

export default dbsandbox
