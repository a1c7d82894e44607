'use strict'
// Every section of the config (config.d.ts, generated from core's schema, types it) in
// one client and one bus: core accepts each, and `breaker: null` turns the breaker off.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { Bus, Client } = require('..')
const { startTestkit } = require('./support')

let kit
before(async () => { kit = await startTestkit(2) })
after(async () => { await kit.close() })

test('every client section is accepted and used', async () => {
  const [a, b] = kit.urls
  const client = new Client({
    services: {
      orders: {
        endpoints: [{ url: a, version: 'v1', weight: 2 }, b],
        timeout_ms: 2000, deadline_ms: 5000, headers: { 'x-team': 'payments' },
        retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 100, retry_on: ['connect', 'timeout', 503] },
        budget: { ratio: 0.5, min_per_sec: 5, window_ms: 5000 },
        breaker: { window_ms: 5000, min_calls: 10, failure_ratio: 0.6, open_ms: 1000, max_open_ms: 10000, probes: 2 },
        hedge: { max_hedges: 1, delay_ms: 100, percentile: 95 },
        rate_limit: { per_second: 1000, burst: 100, wait: true },
        max_concurrency: 64, balancer: 'round_robin',
        outlier: { consecutive_failures: 3, base_ejection_ms: 1000, max_ejection_ms: 10000, max_ejected_ratio: 0.5 },
        versions: { default: 'v1', split: { v1: 100 } },
      },
      adaptive: { endpoints: [b], adaptive_concurrency: { min_limit: 1, max_limit: 50, initial_limit: 10 }, breaker: null, outlier: null },
      discovered: { discovery: { dns: 'localhost', port: 8080, refresh_ms: 60000, scheme: 'http' } },
    },
    tls: { min_version: '1.3' },
    limits: { max_response_body_bytes: 1_000_000, max_request_body_bytes: 1_000_000, max_response_header_bytes: 32768 },
  })
  try {
    assert.equal((await client.get('orders', '/typed')).status, 200)
    const orders = client.stats().services.orders
    assert.equal(orders.breaker_state, 'closed')
    assert.deepEqual(orders.endpoints.map((e) => e.weight), [2, 1])
    assert.equal(orders.concurrency_limit, 64)
    assert.equal((await client.get('adaptive', '/typed')).status, 200)
    assert.equal(client.stats().services.adaptive.breaker_state, 'disabled', 'breaker: null turns it off')
  } finally {
    client.close()
  }
})

test('every bus section is accepted', async () => {
  const bus = await Bus.connect({
    urls: ['memory://typed-config-node'], prefetch: 10, max_unconfirmed: 32, publish_deadline_ms: 5000,
    reconnect: { base_delay_ms: 50, max_delay_ms: 500 },
    dedup: { store: 'memory', capacity: 1000, ttl_ms: 60000 },
    limits: { max_message_bytes: 1_000_000, max_headers: 16, max_header_value_bytes: 4096 },
  })
  try {
    await bus.declareQueue('orders')
    await bus.publish({ routingKey: 'orders', body: 'typed' })
    const consumer = await bus.consume('orders')
    const d = await consumer.next({ timeoutMs: 5000 })
    assert.equal(d.body.toString(), 'typed')
    await d.ack()
    await consumer.close()
  } finally {
    await bus.close()
  }
})
