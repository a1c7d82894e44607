'use strict'
const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('..')
const { startTestkit } = require('./support')

let kit
before(async () => { kit = await startTestkit(3) })
after(async () => { await kit.close() })
beforeEach(async () => { await kit.reset() })

const config = (extra = {}) => ({ services: { orders: { endpoints: [kit.urls[0]], ...extra } } })

test('GET through a service', async () => {
  const client = new Client(config())
  const resp = await client.get('orders', '/v1/items', { query: { page: 2 }, headers: { 'x-trace': 't1' } })
  assert.equal(resp.status, 200)
  assert.equal(resp.attempts, 1)
  assert.equal(resp.endpoint.replace(/\/$/, ''), kit.urls[0])
  const echo = resp.json()
  assert.deepEqual([echo.method, echo.path, echo.query], ['GET', '/v1/items', 'page=2'])
  assert.equal(echo.headers['x-trace'], 't1')
  assert.deepEqual((await kit.requests(0)).by_path, { '/v1/items': 1 })
  client.close()
})

test('a response reads its fields on demand and serializes them all', async () => {
  const client = new Client(config())
  const resp = await client.post('orders', '/v1/orders', { body: 'x', idempotencyKey: 'k-json' })
  assert.equal(resp.trace, resp.trace, 'the trace carrier is one object')
  assert.match(resp.trace.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/)
  assert.deepEqual(JSON.parse(JSON.stringify(resp)), {
    status: 200,
    attempts: 1,
    endpoint: resp.endpoint,
    idempotencyKey: 'k-json',
    trace: resp.trace,
  })
  assert.equal(resp.endpoint.replace(/\/$/, ''), kit.urls[0])
  client.close()
})

test('POST json with an idempotency key, and concurrent calls', async () => {
  const client = new Client(config())
  const resp = await client.post('orders', '/v1/orders', { json: { sku: 'a' }, idempotencyKey: 'k-1' })
  assert.equal(resp.json().headers['content-type'], 'application/json')
  const [a, b] = await Promise.all([client.get('orders', '/a'), client.get(kit.urls[1], '/b')])
  assert.deepEqual([a.status, b.status], [200, 200])
  assert.deepEqual((await kit.requests(0)).by_idempotency_key, { 'k-1': 1 })
})

test('a final 500 is a response, not an error', async () => {
  await kit.behave(0, { default: { status: 500, retry_after: '1' } })
  const resp = await new Client(config()).get('orders', '/x')
  assert.equal(resp.status, 500)
  assert.equal(resp.headers['retry-after'], '1')
})

test('bad config throws COURIER_CONFIG naming the field', () => {
  for (const [cfg, field] of [
    [{ services: { a: { endpoints: [] } } }, 'services.a.endpoints'],
    [{ services: { a: { endpoints: ['not a url'] } } }, 'services.a.endpoints[0].url'],
  ]) {
    assert.throws(() => new Client(cfg), (err) => {
      assert.ok(err instanceof Error)
      assert.equal(err.code, 'COURIER_CONFIG')
      assert.equal(err.field, field)
      assert.ok(err.message.startsWith(field + ':'), err.message)
      return true
    })
  }
})

test('deadline rejects with COURIER_TIMEOUT', async () => {
  await kit.behave(0, { default: { latency_ms: 5000 } })
  const client = new Client(config({ deadline_ms: 200 }))
  await assert.rejects(client.get('orders', '/slow'), { code: 'COURIER_TIMEOUT', kind: 'timeout' })
  await assert.rejects(new Client(config()).get('orders', '/slow', { deadlineMs: 200 }), { code: 'COURIER_TIMEOUT' })
})

test('refused connection rejects with COURIER_CONNECT without leaking credentials', async () => {
  await kit.stop(2)
  const url = kit.urls[2].replace('http://', 'http://user:s3cret-pw@')
  await assert.rejects(new Client({}).get(url), (err) => {
    assert.equal(err.code, 'COURIER_CONNECT')
    assert.ok(!err.message.includes('s3cret-pw'), err.message)
    return true
  })
})

test('closed client rejects with COURIER_CLOSED', async () => {
  const client = new Client(config())
  client.close()
  await assert.rejects(client.get('orders'), { code: 'COURIER_CLOSED' })
})

test('an AbortSignal rejects the call and cancels the request', async () => {
  await kit.behave(0, { default: { latency_ms: 5000 } })
  const client = new Client(config({ max_concurrency: 1 }))
  const controller = new AbortController()
  const pending = client.get('orders', '/slow', { signal: controller.signal })
  setTimeout(() => controller.abort(new Error('user gave up')), 100)
  await assert.rejects(pending, { message: 'user gave up' })
  // Cancelling drops the Rust future on core's runtime, which releases the only
  // concurrency slot; wait for that signal (bounded), then the next call is admitted.
  for (let i = 0; i < 200 && client.stats().services.orders.in_flight > 0; i++) {
    await new Promise((r) => setTimeout(r, 10))
  }
  assert.equal(client.stats().services.orders.in_flight, 0, 'the aborted request was dropped')
  await kit.behave(0, { default: {} })
  assert.equal((await client.get('orders', '/fast')).status, 200)
  await assert.rejects(client.get('orders', '/x', { signal: AbortSignal.abort() }), { name: 'AbortError' })
})

test('every attempt continues the caller trace with its own parent-id', async () => {
  await kit.behave(0, { script: [{ status: 503 }], default: { status: 200 } })
  const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const resp = await new Client(config()).get('orders', '/t', { trace: { traceparent: parent } })
  const sent = (await kit.requests(0)).requests.map((r) => r.headers.traceparent)
  assert.equal(sent.length, 2)
  assert.deepEqual([...new Set(sent.map((tp) => tp.split('-')[1]))], ['4bf92f3577b34da6a3ce929d0e0e4736'])
  assert.equal(new Set(sent.map((tp) => tp.split('-')[2])).size, 2, 'a new parent-id per attempt')
  assert.equal(resp.trace.traceparent, sent[1])
})

test('Client.fromFile loads TOML through core and names bad fields', () => {
  const fs = require('node:fs')
  const os = require('node:os')
  const path = require('node:path')
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'courier-')), 'courier.toml')
  fs.writeFileSync(file, '[services.bad]\nendpoints = []\n')
  assert.throws(() => Client.fromFile(file), { code: 'COURIER_CONFIG', field: 'services.bad.endpoints' })
  fs.writeFileSync(file, `[services.fromfile]\nendpoints = ["${kit.urls[0]}"]\n`)
  return Client.fromFile(file).get('fromfile', '/').then((resp) => assert.equal(resp.status, 200))
})
