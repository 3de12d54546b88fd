// Vitest test file c: the shared cases (../cases.cjs) in a worker of its own (key vitest<pool id>-<pid>).
import { test, expect } from 'vitest'
import cases from '../cases.cjs'

cases.defineCases(test, expect, new RegExp(`/vitest\\d+-${process.pid}$`))
