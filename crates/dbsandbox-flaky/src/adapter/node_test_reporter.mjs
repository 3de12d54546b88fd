// dbsandbox flaky's reporter for `node --test` (--test-reporter=<this file>): one JSON line per
// test (suites left out) with its file, its titles from the outermost describe down, its
// outcome and its failure text; a file that fails on its own (it does not load) gets one line
// with `fileFailure` and what it wrote to stderr. Needs nothing but Node.
export default async function* dbsandboxFlakyReporter(source) {
  // The names of the tests being reported, by nesting level, per file.
  const stacks = new Map()
  const stackOf = (file) => {
    if (!stacks.has(file)) stacks.set(file, [])
    return stacks.get(file)
  }
  const stderr = new Map()
  for await (const event of source) {
    const data = event.data ?? {}
    const file = data.file ?? ''
    if (event.type === 'test:stderr') {
      stderr.set(file, ((stderr.get(file) ?? '') + data.message).slice(-8000))
      continue
    }
    if (event.type === 'test:start') {
      const stack = stackOf(file)
      stack.length = data.nesting
      stack.push(data.name)
      continue
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue
    const details = data.details ?? {}
    if (details.type === 'suite') {
      // A suite fails on its own only when its hooks or its body threw.
      if (event.type !== 'test:fail') continue
    }
    const titles = [...stackOf(file).slice(0, data.nesting), data.name]
    let outcome = event.type === 'test:pass' ? 'passed' : 'failed'
    if (data.skip !== undefined || data.todo !== undefined) outcome = 'skipped'
    let message = null
    if (outcome === 'failed') {
      const error = details.error
      const cause = error?.cause ?? error
      message = String(cause?.stack ?? cause?.message ?? error ?? 'failed').slice(0, 8000)
    }
    const line = { file, titles, outcome, message }
    if (details.type === 'suite') line.suite = true
    if (data.nesting === 0 && data.name === file && outcome === 'failed') {
      line.fileFailure = true
      line.message = [stderr.get(file), message].filter(Boolean).join('\n')
    }
    yield JSON.stringify(line) + '\n'
  }
}
