'use strict'
// One HTTP request with node:http / node:https (no proxy, no dependency), used in-process by the
// async API and, run as a script, by the synchronous API (src/index.cjs spawns
// `node src/http.cjs` with the request as JSON on stdin and reads {status, body} or {error}).

const http = require('node:http')
const https = require('node:https')

/**
 * @param {{ url: string, method: string, headers?: Record<string, string>, body?: string, timeoutMs?: number }} req
 * @returns {Promise<{ status: number, body: string }>} rejects with the network error
 */
function httpRequest (req) {
  return new Promise((resolve, reject) => {
    const target = new URL(req.url)
    const lib = target.protocol === 'https:' ? https : http
    const headers = { ...(req.headers || {}) }
    if (req.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(req.body))
    const r = lib.request(target, { method: req.method, headers, agent: false }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode || 0, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    r.setTimeout(req.timeoutMs || 120000, () => r.destroy(new Error(`no answer within ${(req.timeoutMs || 120000) / 1000} s`)))
    r.on('error', reject)
    if (req.body !== undefined) r.write(req.body)
    r.end()
  })
}

module.exports = { httpRequest }

if (require.main === module) {
  const chunks = []
  process.stdin.on('data', (c) => chunks.push(c))
  process.stdin.on('end', () => {
    let req
    try {
      req = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch (err) {
      process.stdout.write(JSON.stringify({ error: `bad request spec: ${err.message}` }))
      return
    }
    httpRequest(req).then(
      (res) => process.stdout.write(JSON.stringify(res)),
      (err) => process.stdout.write(JSON.stringify({ error: err.message || String(err), code: err.code }))
    )
  })
}
