// The one line for Vitest (setupFiles): this worker's sandbox, reset before each test.
import { beforeEach, afterAll } from 'vitest'
import { setup } from '@dbsandbox/node'
process.env.DATABASE_URL = setup({ beforeEach, afterAll })
