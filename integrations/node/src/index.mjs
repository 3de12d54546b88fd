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
  NOT_RUNNING_MESSAGE,
  API_VERSION,
  PLATFORM_PACKAGE
} = dbsandbox

export default dbsandbox
