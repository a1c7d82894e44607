'use strict'
// The client-side rate limit (refusals counted at the testkit, keys, the 429 feedback) and
// the adaptive concurrency limit from Node. Each test uses a service name of its own.
const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('..')
const { startTestkit } = require('./support')

let kit
before(async () => { kit = await startTestkit(1) })
after(async () => { await kit.close() })
beforeEach(async () => { await kit.reset() })

const limited = (name, rate) => new Client({ services: { [name]: { endpoints: [kit.urls[0]], rate_limit: rate } } })

test('past the burst a limit that does not wait rejects with COURIER_RATE_LIMITED', async () => {
  const c = limited('node-rate', { per_second: 0.5, burst: 2, wait: false })
  for (let i = 0; i < 2; i++) assert.equal((await c.get('node-rate', '/x')).status, 200)
  const err = await c.get('node-rate', '/x').then(() => null, (e) => e)
  assert.equal(err.code, 'COURIER_RATE_LIMITED')
  assert.equal(err.kind, 'rate_limited')
  assert.equal(err.service, 'node-rate')
  assert.ok(err.retryAfterMs > 1000 && err.retryAfterMs <= 2000, String(err.retryAfterMs))
  assert.equal((await kit.requests(0)).total, 2)
  const s = c.stats().services['node-rate']
  assert.deepEqual([s.rate_limited, s.rate_per_sec], [1, 0.5])
})

test('keys have buckets of their own', async () => {
  const c = limited('node-rate-keys', { per_second: 0.5, burst: 1, wait: false })
  await c.get('node-rate-keys', '/x', { rateKey: 'tenant-a' })
  await assert.rejects(c.get('node-rate-keys', '/x', { rateKey: 'tenant-a' }), { code: 'COURIER_RATE_LIMITED' })
  await c.get('node-rate-keys', '/x', { rateKey: 'tenant-b' })
  await c.get('node-rate-keys', '/x')
  assert.equal((await kit.requests(0)).total, 3)
})

test('a 429 with Retry-After pauses the bucket', async () => {
  await kit.behave(0, { script: [{ status: 429, retry_after: '30' }] })
  const c = limited('node-rate-429', { per_second: 1000, burst: 100, wait: false })
  assert.equal((await c.get('node-rate-429', '/x')).status, 429)
  const err = await c.get('node-rate-429', '/x').then(() => null, (e) => e)
  assert.equal(err.code, 'COURIER_RATE_LIMITED')
  assert.ok(err.retryAfterMs > 25000, String(err.retryAfterMs))
  const rate = c.stats().services['node-rate-429'].rate_per_sec
  assert.ok(rate >= 500 && rate < 1000, String(rate))
})

test('rate_key errors name the field', async () => {
  const c = new Client({ services: { 'node-open': { endpoints: [kit.urls[0]] } } })
  await assert.rejects(c.get('node-open', '/x', { rateKey: 'tenant-a' }), { code: 'COURIER_CONFIG', field: 'rate_key' })
  await assert.rejects(c.get('node-open', '/x', { rateKey: 7 }), { code: 'COURIER_CONFIG', field: 'rate_key' })
  assert.throws(() => limited('node-bad-rate', { per_second: 0 }), {
    code: 'COURIER_CONFIG', field: 'services.node-bad-rate.rate_limit.per_second',
  })
})

test('an adaptive limit rejects past its current limit with COURIER_OVERLOADED', async () => {
  // Long enough that the two calls still hold their slots after a stalled machine.
  await kit.behave(0, { default: { latency_ms: 1500 } })
  const c = new Client({
    services: { 'node-adaptive': { endpoints: [kit.urls[0]], adaptive_concurrency: { min_limit: 1, max_limit: 50, initial_limit: 2 } } },
  })
  assert.equal(c.stats().services['node-adaptive'].concurrency_limit, 2)
  const first = [c.get('node-adaptive', '/x'), c.get('node-adaptive', '/x')]
  for (let i = 0; i < 200 && c.stats().services['node-adaptive'].in_flight < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await assert.rejects(c.get('node-adaptive', '/x'), { code: 'COURIER_OVERLOADED', limit: 2 })
  assert.deepEqual((await Promise.all(first)).map((r) => r.status), [200, 200])
  const s = c.stats().services['node-adaptive']
  assert.deepEqual([s.overloaded, s.in_flight], [1, 0])
})
