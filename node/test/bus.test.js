'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Bus } = require('..')
const { amqpUrl } = require('./support')

// Fixed queue names, reused across runs; leftovers from an interrupted run are skipped by id.
async function take(consumer, messageId) {
  for await (const d of consumer) {
    if (d.messageId === messageId) return d
    await d.ack()
  }
  throw new Error('consumer closed before the message arrived')
}

test('publish → consume → ack with for await', async () => {
  const bus = await Bus.connect({ urls: [amqpUrl] })
  const q = 'courier-test.node.roundtrip'
  await bus.declareQueue(q)
  const { messageId } = await bus.publish({ routingKey: q, body: 'hello', headers: { 'x-n': '1' }, correlationId: 'c1' })
  const consumer = await bus.consume(q, { prefetch: 10 })
  const d = await take(consumer, messageId)
  assert.equal(d.body.toString(), 'hello')
  assert.equal(d.headers['x-n'], '1')
  assert.deepEqual(Object.keys(d.headers).sort(), ['traceparent', 'x-n'], 'application headers plus the trace')
  assert.deepEqual([d.correlationId, d.routingKey, d.redelivered], ['c1', q, false])
  await d.ack()
  await assert.rejects(d.ack(), { code: 'COURIER_CLOSED' })
  await assert.rejects(consumer.next({ timeoutMs: 200 }), { code: 'COURIER_TIMEOUT' })
  await consumer.close()
  assert.equal(await consumer.next(), null)
  await bus.close()
  await assert.rejects(bus.publish({ routingKey: q, body: 'x' }), { code: 'COURIER_CLOSED' })
})

test('unroutable publish and missing queue are typed errors', async () => {
  const bus = await Bus.connect({ urls: [amqpUrl] })
  await assert.rejects(bus.publish({ routingKey: 'courier-test.node.no-such-queue', body: 'x' }), { code: 'COURIER_UNROUTABLE' })
  await assert.rejects(bus.consume('courier-test.node.no-such-queue'), { code: 'COURIER_BROKER' })
  await bus.close()
})

test('bad bus config rejects with the field path', async () => {
  await assert.rejects(Bus.connect({ urls: ['http://nope'] }), { code: 'COURIER_CONFIG', field: 'urls[0]' })
  await assert.rejects(Bus.connect({ urls: [] }), { code: 'COURIER_CONFIG', field: 'urls' })
})

test('a message carries the caller trace to the consumer', async () => {
  const bus = await Bus.connect({ urls: [amqpUrl] })
  const q = 'courier-test.node.trace'
  await bus.declareQueue(q)
  const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const receipt = await bus.publish({ routingKey: q, body: 'x', trace: { traceparent: parent, baggage: 'k=v' } })
  assert.equal(receipt.trace.traceparent.split('-')[1], '4bf92f3577b34da6a3ce929d0e0e4736')
  assert.notEqual(receipt.trace.traceparent, parent, 'the message is a child span')
  const consumer = await bus.consume(q)
  const d = await take(consumer, receipt.messageId)
  assert.deepEqual(d.trace, receipt.trace)
  await d.ack()
  await consumer.close()
  await bus.close()
})
