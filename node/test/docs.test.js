'use strict'
// docs/api.md's JavaScript snippets, run as a reader would run them: in order, as one ES
// module (later snippets use what earlier ones made), importing this package, with the
// documentation's upstream address pointed at the testkit. A snippet that no longer
// matches the package fails here.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const { startTestkit } = require('./support')

const apiMd = path.join(__dirname, '..', '..', 'docs', 'api.md')
const docUpstream = 'http://127.0.0.1:8081'

let kit
before(async () => { kit = await startTestkit(1) })
after(async () => { if (kit) await kit.close() })

test('every JavaScript snippet in the API docs runs, in order, as one module', async () => {
  const blocks = [...fs.readFileSync(apiMd, 'utf8').matchAll(/^```js\n([\s\S]*?)^```/gm)].map((m) => m[1])
  assert.ok(blocks.length >= 4, `only ${blocks.length} js blocks in ${apiMd}`)
  const entry = pathToFileURL(path.join(__dirname, '..', 'index.mjs')).href
  const source = blocks.join('\n')
    .replaceAll("from 'courierkit'", `from '${entry}'`)
    .replaceAll(docUpstream, kit.urls[0])
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'courier-docs-'))
  const file = path.join(dir, 'api-md.mjs')
  fs.writeFileSync(file, source)
  try {
    const stdout = await new Promise((resolve, reject) => {
      execFile(process.execPath, [file], { timeout: 60_000 }, (err, out, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`))
        else resolve(out)
      })
    })
    // What the snippets print: a created order (with the testkit's JSON body, over
    // several lines), a consumed message, an RPC reply.
    const lines = stdout.trim().split('\n')
    assert.match(lines[0], /^200 1 /, stdout)
    assert.deepEqual(lines.slice(-2), ['hello true', '42'], stdout)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
