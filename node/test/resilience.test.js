'use strict'
// Retries, POST safety, the breaker and the budget, counted at the testkit upstream.
// Each test uses a service name of its own: retry budgets are per process and per service.
const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('..')
const { startTestkit } = require('./support')

let kit
before(async () => { kit = await startTestkit(2) })
after(async () => { await kit.close() })
beforeEach(async () => { await kit.reset() })

const client = (name, extra = {}) => new Client({ services: { [name]: { endpoints: [kit.urls[0]], ...extra } } })

test('503, 503, 200 succeeds on the third attempt', async () => {
  await kit.behave(0, { script: [{ status: 503 }, { status: 503 }], default: { status: 200 } })
  const c = client('node-retry')
  const resp = await c.get('node-retry', '/x')
  assert.deepEqual([resp.status, resp.attempts], [200, 3])
  assert.equal((await kit.requests(0)).total, 3)
  const s = c.stats().services['node-retry']
  assert.deepEqual([s.requests, s.attempts, s.retries], [1, 3, 2])
})

test('a POST is re-sent after a reset only with an idempotency key', async () => {
  await kit.behave(0, { default: { reset: 'mid_response' } })
  const c = client('node-post')
  await assert.rejects(c.post('node-post', '/orders', { json: { sku: 1 } }), { code: 'COURIER_CONNECT' })
  assert.equal((await kit.requests(0)).total, 1, 'a POST that may have run is never re-sent')
  await kit.reset()
  await kit.behave(0, { default: { reset: 'mid_response' } })
  await assert.rejects(c.post('node-post', '/orders', { json: { sku: 1 }, idempotencyKey: 'k-1' }), { code: 'COURIER_CONNECT' })
  assert.deepEqual((await kit.requests(0)).by_idempotency_key, { 'k-1': 3 })
})

test('an open breaker fails fast with COURIER_CIRCUIT_OPEN', async () => {
  await kit.behave(0, { default: { status: 503 } })
  const c = client('node-breaker', {
    retry: { max_attempts: 1 },
    breaker: { min_calls: 2, failure_ratio: 0.5, open_ms: 60000, max_open_ms: 60000, probes: 1 },
  })
  for (let i = 0; i < 2; i++) assert.equal((await c.get('node-breaker')).status, 503)
  await assert.rejects(c.get('node-breaker'), (err) => {
    assert.equal(err.code, 'COURIER_CIRCUIT_OPEN')
    assert.ok(err.retryAfterMs > 0)
    return true
  })
  assert.equal((await kit.requests(0)).total, 2)
  assert.equal(c.stats().services['node-breaker'].breaker_state, 'open')
})

test('a denied retry rejects with COURIER_BUDGET_EXHAUSTED carrying the last error', async () => {
  await kit.stop(1)
  const c = new Client({ services: { 'node-budget': {
    endpoints: [kit.urls[1]], budget: { ratio: 0, min_per_sec: 0 }, breaker: null,
  } } })
  await assert.rejects(c.get('node-budget'), (err) => {
    assert.equal(err.code, 'COURIER_BUDGET_EXHAUSTED')
    assert.equal(err.kind, 'budget_exhausted')
    assert.equal(err.attempts, 1)
    assert.equal(err.cause.code, 'COURIER_CONNECT')
    return true
  })
})

test('a hanging upstream rejects with COURIER_TIMEOUT at the deadline', async () => {
  await kit.behave(0, { default: { latency_ms: 5000 } })
  await assert.rejects(client('node-hang').get('node-hang', '/', { deadlineMs: 200 }), { code: 'COURIER_TIMEOUT' })
})
