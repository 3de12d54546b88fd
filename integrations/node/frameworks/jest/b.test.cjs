// Jest test file b: the shared cases (../cases.cjs) in a worker of its own (key jest<id>-<pid>).
require('../cases.cjs').defineCases(test, expect, new RegExp(`/jest${process.env.JEST_WORKER_ID}-${process.pid}$`))
