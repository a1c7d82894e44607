'use strict'
// Hedged requests and the per-call idempotency key, counted at the testkit upstreams.
// Round robin's first pick is the first endpoint, so a script that hangs upstream 0's
// first request makes the first attempt hang; only a hedge to upstream 1 answers within
// the deadline. Each test uses a service name of its own (retry budgets are per process).
const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('..')
const { startTestkit } = require('./support')

let kit
before(async () => { kit = await startTestkit(2) })
after(async () => { await kit.close() })
beforeEach(async () => { await kit.reset() })

const hedged = (name, extra = {}) => new Client({
  services: {
    [name]: { endpoints: kit.urls, balancer: 'round_robin', deadline_ms: 3000, hedge: { delay_ms: 50 }, ...extra },
  },
})
const totals = async () => [(await kit.requests(0)).total, (await kit.requests(1)).total]

test('a hedge answers while the first attempt hangs', async () => {
  await kit.behave(0, { script: [{ latency_ms: 10000 }] })
  const c = hedged('node-hedge')
  const resp = await c.get('node-hedge', '/x')
  assert.deepEqual([resp.status, resp.attempts], [200, 2])
  assert.equal(resp.endpoint.replace(/\/$/, ''), kit.urls[1].replace(/\/$/, ''))
  const s = c.stats().services['node-hedge']
  assert.deepEqual([s.hedges, s.hedges_won, s.in_flight], [1, 1, 0])
  assert.deepEqual(await totals(), [1, 1])
})

test('an idempotent POST is hedged with one generated key', async () => {
  await kit.behave(0, { script: [{ latency_ms: 10000 }] })
  const c = hedged('node-hedge-post')
  const resp = await c.post('node-hedge-post', '/orders', { json: { sku: 1 }, idempotent: true })
  assert.deepEqual([resp.status, resp.attempts], [200, 2])
  const key = resp.idempotencyKey
  assert.match(key, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/)
  assert.deepEqual((await kit.requests(0)).by_idempotency_key, { [key]: 1 })
  assert.deepEqual((await kit.requests(1)).by_idempotency_key, { [key]: 1 })
})

test('a POST without a key is not hedged', async () => {
  await kit.behave(0, { script: [{ latency_ms: 300 }] })
  const c = hedged('node-hedge-plain')
  const resp = await c.post('node-hedge-plain', '/orders', { json: {} })
  assert.deepEqual([resp.attempts, resp.idempotencyKey], [1, null])
  assert.equal(c.stats().services['node-hedge-plain'].hedges, 0)
})

test('an idempotent POST is retried with one key; a given key is kept', async () => {
  await kit.behave(0, { script: [{ status: 503 }, { status: 503 }], default: { status: 201 } })
  const c = new Client({ services: { 'node-idem': { endpoints: [kit.urls[0]] } } })
  const resp = await c.post('node-idem', '/charges', { body: '{}', idempotent: true })
  assert.deepEqual([resp.status, resp.attempts], [201, 3])
  assert.deepEqual((await kit.requests(0)).by_idempotency_key, { [resp.idempotencyKey]: 3 })
  const given = await c.post('node-idem', '/charges', { idempotent: true, idempotencyKey: 'charge-17' })
  assert.equal(given.idempotencyKey, 'charge-17')
  await assert.rejects(c.post('node-idem', '/charges', { idempotent: 'yes' }), { code: 'COURIER_CONFIG', field: 'idempotent' })
})

test('aborting a hedged call releases both attempts', async () => {
  await kit.behave(0, { default: { latency_ms: 10000 } })
  await kit.behave(1, { default: { latency_ms: 10000 } })
  const c = hedged('node-hedge-abort', { deadline_ms: 20000 })
  const controller = new AbortController()
  const call = c.get('node-hedge-abort', '/x', { signal: controller.signal })
  for (let i = 0; i < 200 && (await totals()).reduce((a, b) => a + b) < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  assert.deepEqual(await totals(), [1, 1], 'the first attempt and its hedge')
  controller.abort()
  await assert.rejects(call, { name: 'AbortError' })
  let s
  for (let i = 0; i < 200; i++) {
    s = c.stats().services['node-hedge-abort']
    if (s.in_flight === 0 && s.endpoints.every((ep) => ep.in_flight === 0)) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  assert.deepEqual([s.in_flight, s.endpoints.map((ep) => ep.in_flight)], [0, [0, 0]])
})

test('hedge settings are checked and named', () => {
  assert.throws(
    () => new Client({ services: { a: { endpoints: ['http://127.0.0.1:9'], hedge: { max_hedges: 9 } } } }),
    { code: 'COURIER_CONFIG', field: 'services.a.hedge.max_hedges' },
  )
})
