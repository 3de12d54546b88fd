// The one line for Jest (setupFilesAfterEnv): this worker's sandbox, reset before each test.
const { setup } = require('@dbsandbox/node')
process.env.DATABASE_URL = setup({ beforeEach, afterAll })
