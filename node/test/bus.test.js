'use strict'
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { Bus } = require('..')
const { amqpUrl } = require('./support')

// Fixed queue names, reused across runs; leftovers from an interrupted run are skipped by id.
// With `next()`, not `for await`: returning from that loop would close the consumer.
async function take(consumer, messageId) {
  for (let d = await consumer.next(); d !== null; d = await consumer.next()) {
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
  // The fields of core's error table, in camelCase, the same in every language.
  await assert.rejects(bus.publish({ routingKey: 'courier-test.node.no-such-queue', body: 'x', messageId: 'm-1' }), {
    code: 'COURIER_UNROUTABLE', messageId: 'm-1', exchange: '', routingKey: 'courier-test.node.no-such-queue', replyText: 'NO_ROUTE',
  })
  await assert.rejects(bus.consume('courier-test.node.no-such-queue'), { code: 'COURIER_BROKER', replyCode: 404, operation: 'basic.consume' })
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

// memory:// — the in-process broker, one unique name per test so tests cannot see each other.
let memoryBrokers = 0
const memoryUrl = (name) => `memory://node-${process.pid}-${++memoryBrokers}-${name}`

test('memory: publish → consume → ack round trip, with deadlineMs and string/Buffer bodies', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl('roundtrip')] })
  await bus.declareQueue('jobs')
  const first = await bus.publish({ routingKey: 'jobs', body: 'hello', headers: { 'x-n': '1' }, correlationId: 'c1', deadlineMs: 1000 })
  const second = await bus.publish({ routingKey: 'jobs', body: Buffer.from([1, 2, 3]) })
  const consumer = await bus.consume('jobs', { prefetch: 10 })
  const seen = []
  for await (const d of consumer) {
    seen.push(d)
    await d.ack()
    if (seen.length === 2) break
  }
  assert.deepEqual(seen.map((d) => d.messageId), [first.messageId, second.messageId])
  const [d] = seen
  assert.equal(d.body.toString(), 'hello')
  assert.ok(Buffer.isBuffer(d.body))
  assert.deepEqual([d.headers['x-n'], d.correlationId, d.routingKey, d.exchange, d.redelivered], ['1', 'c1', 'jobs', '', false])
  assert.equal(d.replyTo, null, 'a plain message is not a request')
  assert.deepEqual(d.trace, first.trace)
  assert.deepEqual(seen[1].body, Buffer.from([1, 2, 3]))
  await assert.rejects(d.reply('nobody asked'), { code: 'COURIER_CONFIG' })
  assert.equal(await consumer.next({ timeoutMs: 100 }), null, 'leaving the loop closed the consumer')
  await bus.close()
})

test('memory: a receipt reads its fields on demand and serializes them all', async () => {
  const bus = await Bus.connect({ urls: [`memory://receipt-${process.pid}`] })
  await bus.declareQueue('orders')
  const receipt = await bus.publish({ routingKey: 'orders', body: 'a', messageId: 'r-1' })
  assert.equal(receipt.messageId, 'r-1')
  assert.equal(receipt.trace, receipt.trace, 'the trace carrier is one object')
  assert.equal(receipt.traceContext.toCarrier().traceparent, receipt.trace.traceparent)
  const json = JSON.parse(JSON.stringify(receipt))
  assert.deepEqual([json.messageId, json.trace], ['r-1', receipt.trace])
  const [settled] = await bus.publishMany([{ routingKey: 'orders', body: 'b', messageId: 'r-2' }])
  assert.equal(settled.status, 'fulfilled')
  assert.equal(settled.value.messageId, 'r-2')
  await bus.close()
})

test('memory: a message id already acked is skipped and counted in stats().deduplicated', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl('dedup')] })
  await bus.declareQueue('orders')
  await bus.publish({ routingKey: 'orders', body: 'a', messageId: 'order-1' })
  await bus.publish({ routingKey: 'orders', body: 'a again', messageId: 'order-1' })
  await bus.publish({ routingKey: 'orders', body: 'b', messageId: 'order-2' })
  const consumer = await bus.consume('orders')
  const ids = []
  for (;;) {
    let d
    try {
      d = await consumer.next({ timeoutMs: 300 })
    } catch (e) {
      if (e.code === 'COURIER_TIMEOUT') break
      throw e
    }
    ids.push(d.messageId)
    await d.ack()
  }
  assert.deepEqual(ids, ['order-1', 'order-2'], 'each id is seen once')
  const stats = bus.stats()
  assert.equal(stats.deduplicated, 1)
  assert.equal(stats.delivered, 2)
  assert.equal(stats.acked, 2)
  await consumer.close()
  await bus.close()
})

test('memory: consume with dedup: false hands over every copy', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl('no-dedup')] })
  await bus.declareQueue('orders')
  await bus.publish({ routingKey: 'orders', body: 'a', messageId: 'same' })
  await bus.publish({ routingKey: 'orders', body: 'a', messageId: 'same' })
  const consumer = await bus.consume('orders', { dedup: false })
  for (let i = 0; i < 2; i++) {
    const d = await consumer.next({ timeoutMs: 1000 })
    assert.equal(d.messageId, 'same')
    await d.ack()
  }
  assert.equal(bus.stats().deduplicated, 0)
  await consumer.close()
  await bus.close()
})

test('memory: request → serve → reply', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl('rpc')] })
  await bus.declareQueue('pricing')
  const server = await bus.serve('pricing')
  const served = []
  const serving = (async () => {
    for await (const req of server) {
      served.push(req)
      await req.reply(`price of ${req.body}`, { 'x-served-by': 'node' })
      await req.ack()
      if (served.length === 2) break
    }
  })()
  const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const reply = await bus.request({ routingKey: 'pricing', body: 'apples', timeoutMs: 5000, headers: { 'x-q': '1' }, trace: { traceparent: parent } })
  assert.equal(reply.body.toString(), 'price of apples')
  assert.equal(reply.headers['x-served-by'], 'node')
  assert.equal(reply.trace.traceparent.split('-')[1], '4bf92f3577b34da6a3ce929d0e0e4736', 'the reply continues the caller trace')
  await reply.ack() // a reply needs no settling: a no-op
  const second = await bus.request({ routingKey: 'pricing', body: Buffer.from('pears') })
  assert.equal(second.body.toString(), 'price of pears')
  await serving
  assert.equal(served.length, 2)
  assert.equal(typeof served[0].replyTo, 'string', 'a request carries where to reply')
  assert.equal(served[0].headers['x-q'], '1')
  assert.equal(reply.correlationId, served[0].correlationId)
  assert.equal(bus.stats().rpc_in_flight, 0)
  await server.close()
  await bus.close()
})

test('memory: a request nobody answers rejects with COURIER_TIMEOUT; one no queue takes with COURIER_UNROUTABLE', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl('rpc-timeout')] })
  await bus.declareQueue('silent')
  const server = await bus.serve('silent')
  const serving = (async () => {
    for await (const req of server) await req.ack() // never replies
  })()
  const started = Date.now()
  await assert.rejects(bus.request({ routingKey: 'silent', body: 'hello?', timeoutMs: 300 }), { code: 'COURIER_TIMEOUT', kind: 'timeout' })
  assert.ok(Date.now() - started >= 250, 'waited for the timeout')
  await assert.rejects(bus.request({ routingKey: 'no-such-queue', body: 'x', timeoutMs: 1000 }), { code: 'COURIER_UNROUTABLE' })
  await assert.rejects(bus.request({ routingKey: 'silent', body: 'x', timeoutMs: 0 }), { code: 'COURIER_CONFIG' })
  await server.close()
  await serving
  await bus.close()
})

test('memory: stats() has every counter in snake_case like client.stats(), and close() ends everything', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl('stats')] })
  await bus.declareQueue('q')
  await bus.publish({ routingKey: 'q', body: 'x' })
  const consumer = await bus.consume('q')
  await (await consumer.next({ timeoutMs: 1000 })).ack()
  const stats = bus.stats()
  assert.deepEqual(Object.keys(stats).sort(), [
    'acked', 'confirmed', 'deduplicated', 'delayed', 'delivered', 'expired', 'nacked', 'publish_rejected', 'published',
    'reconnects', 'redelivered', 'rejected', 'republished', 'resent', 'retried', 'returned', 'rpc_in_flight',
  ])
  assert.ok(Object.values(stats).every((v) => Number.isInteger(v) && v >= 0))
  assert.deepEqual([stats.published, stats.confirmed, stats.delivered, stats.acked], [1, 1, 1, 1])
  await bus.close()
  assert.equal(await consumer.next(), null, 'a closed bus ends its consumers')
  await assert.rejects(bus.publish({ routingKey: 'q', body: 'x' }), { code: 'COURIER_CLOSED' })
  await assert.rejects(bus.request({ routingKey: 'q', body: 'x' }), { code: 'COURIER_CLOSED' })
  await assert.rejects(bus.consume('q'), { code: 'COURIER_CLOSED' })
  await assert.rejects(bus.serve('q'), { code: 'COURIER_CLOSED' })
  await bus.close() // twice is fine
})
