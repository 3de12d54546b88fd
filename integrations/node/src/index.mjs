// ESM entry of @dbsandbox/node: the same functions as the CommonJS entry (src/index.cjs).
import dbsandbox from './index.cjs'

export const {
  sandboxUrl,
  resetSandbox,
  setup,
  workerKey,
  acquireSandbox,
  acquireSandboxSync,
  releaseAll,
  daemon,
  startOrAttach,
  findBinary,
  Sandbox,
  DbsandboxError,
  DbsandboxNotRunningError,
  DbsandboxStartError,
  DbsandboxApiError,
  RESET_STATEMENT,
  NOT_RUNNING_MESSAGE
} = dbsandbox

export default dbsandbox
