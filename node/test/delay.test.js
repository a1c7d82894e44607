'use strict'
// Delayed publishes (`delayMs`) and delayed retries (`retryDelaysMs`) on RabbitMQ and
// memory://. Delays are checked as lower bounds only: a message may not arrive early.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')
const { Bus } = require('..')
const { amqpUrl } = require('./support')

const memoryUrl = () => `memory://courier-node-delay-${randomUUID()}`

async function next(consumer) {
  const d = await consumer.next({ timeoutMs: 5000 })
  assert.ok(d, 'a delivery within 5 s')
  return d
}

for (const [transport, url] of [['amqp', () => amqpUrl], ['memory', memoryUrl]]) {
  test(`${transport}: a delayed message is overtaken and arrives no earlier than its delay`, async () => {
    const bus = await Bus.connect({ urls: [url()] })
    const q = `courier-test.node.delayed.${randomUUID()}`
    await bus.declareQueue(q, { quorum: false, deadLetter: false })
    const sent = Date.now()
    const receipt = await bus.publish({ routingKey: q, body: 'later', delayMs: 700, headers: { 'x-tenant': 'acme' } })
    await bus.publish({ routingKey: q, body: 'now' })
    const consumer = await bus.consume(q)
    const first = await next(consumer)
    assert.equal(first.body.toString(), 'now')
    await first.ack()
    const later = await next(consumer)
    assert.ok(Date.now() - sent >= 700, `arrived after ${Date.now() - sent} ms`)
    assert.equal(later.body.toString(), 'later')
    assert.equal(later.messageId, receipt.messageId)
    assert.equal(later.headers['x-tenant'], 'acme')
    assert.equal(later.traceContext.traceId, receipt.traceContext.traceId)
    await later.ack()
    assert.equal(bus.stats().delayed, 1)
    await consumer.close()
    await bus.close()
  })

  test(`${transport}: nacks come back after each retry delay, then dead-letter`, async () => {
    const bus = await Bus.connect({ urls: [url()] })
    const q = `courier-test.node.retry.${randomUUID()}`
    await bus.declareQueue(q, { retryDelaysMs: [200, 400] })
    await bus.publish({ routingKey: q, body: 'flaky', messageId: 'order-1' })
    const consumer = await bus.consume(q)
    let d = await next(consumer)
    for (const [retry, delay] of [[1, 200], [2, 400]]) {
      const nacked = Date.now()
      await d.nack(true)
      d = await next(consumer)
      assert.ok(Date.now() - nacked >= delay, `retry ${retry} after ${Date.now() - nacked} ms`)
      assert.equal(d.messageId, 'order-1')
      assert.equal(d.headers['x-courier-retries'], String(retry))
      assert.deepEqual([d.exchange, d.routingKey], ['', q])
    }
    await d.nack(true)
    const dead = await bus.consume(`${q}.dlq`)
    const parked = await next(dead)
    assert.equal(parked.messageId, 'order-1')
    assert.equal(parked.headers['x-courier-retries'], '2')
    await parked.ack()
    const stats = bus.stats()
    assert.deepEqual([stats.retried, stats.nacked], [2, 3])
    await consumer.close()
    await dead.close()
    await bus.close()
  })
}

test('invalid delays reject with the field named, nothing sent', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl()] })
  await bus.declareQueue('orders')
  for (const [retryDelaysMs, field] of [
    [[1000, 0], 'retry_delays_ms[1]'],
    ['1000', 'retry_delays_ms'],
    [[1.5], 'retry_delays_ms[0]'],
    [['1000'], 'retry_delays_ms[0]'],
    [Array(17).fill(1), 'retry_delays_ms'],
  ]) {
    await assert.rejects(bus.declareQueue('retrying', { retryDelaysMs }), { code: 'COURIER_CONFIG', field })
  }
  await assert.rejects(bus.declareQueue('retrying', { retryDelaysMs: [1], deadLetter: false }), {
    code: 'COURIER_CONFIG', field: 'retry_delays_ms',
  })
  for (const delayMs of [0, -1, 2.5, Number.NaN, '10']) {
    await assert.rejects(bus.publish({ routingKey: 'orders', body: 'x', delayMs }), { code: 'COURIER_CONFIG', field: 'delay_ms' })
  }
  assert.equal(bus.stats().published, 0)
  await bus.close()
})
