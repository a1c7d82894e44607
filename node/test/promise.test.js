'use strict'
// How Promises settle: every completion goes through one shared queue per JavaScript
// thread (node/src/promise.rs). A pending Promise keeps the process alive until it
// settles; an idle client or bus does not; worker threads get queues of their own.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const path = require('node:path')

const pkg = path.join(__dirname, '..')

/** Runs `source` in a new node process with the package at hand; returns its stdout. */
function run(source) {
  return execFileSync(process.execPath, ['-e', source], { cwd: pkg, encoding: 'utf8', timeout: 20000 })
}

test('a pending Promise keeps the process alive until it settles, then it exits', () => {
  // Nothing but the request's Promise is pending: no timers, no sockets of Node's own.
  const out = run(`
    const { Bus } = require('.')
    Bus.connect({ urls: ['memory://promise-alive'] }).then(async (bus) => {
      await bus.declareQueue('q', { quorum: false })
      bus.request({ routingKey: 'q', body: 'x', timeoutMs: 300 })
        .then(() => console.log('answered'), (e) => console.log('settled ' + e.code))
    })
  `)
  assert.equal(out.trim(), 'settled COURIER_TIMEOUT')
})

test('an idle client and bus let the process exit', () => {
  const out = run(`
    const { Bus, Client } = require('.')
    new Client({ services: { a: { endpoints: ['http://127.0.0.1:9'] } } })
    Bus.connect({ urls: ['memory://promise-idle'] }).then(() => console.log('connected'))
  `)
  assert.equal(out.trim(), 'connected')
})

test('Promises made on worker threads settle there, many at once', () => {
  const out = run(`
    const { Worker } = require('node:worker_threads')
    const source = \`
      const { parentPort } = require('node:worker_threads')
      const { Bus } = require(\${JSON.stringify(process.cwd())})
      ;(async () => {
        const bus = await Bus.connect({ urls: ['memory://promise-worker-' + Math.random()] })
        await bus.declareQueue('q', { quorum: false })
        const receipts = await Promise.all(Array.from({ length: 200 }, (_, i) => bus.publish({ routingKey: 'q', body: String(i) })))
        await bus.close()
        parentPort.postMessage(receipts.length)
      })()
    \`
    const done = []
    for (let i = 0; i < 2; i++) {
      const w = new Worker(source, { eval: true })
      done.push(new Promise((resolve, reject) => { w.on('message', resolve); w.on('error', reject) }))
    }
    Promise.all(done).then((counts) => console.log(counts.join(',')))
  `)
  assert.equal(out.trim(), '200,200')
})
