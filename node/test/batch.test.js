'use strict'
// Batches (`publishMany`, `nextBatch` with one settle call) and deadlines across queues
// (`ttlMs`, `Delivery.remainingMs`, `deadlineFromHeaders`), on RabbitMQ and memory://.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')
const { Bus, deadlineFromHeaders } = require('..')
const { amqpUrl } = require('./support')

const transports = [['amqp', () => amqpUrl], ['memory', () => `memory://node-batch-${randomUUID()}`]]
const queue = (name) => `courier-test.node.${name}.${randomUUID()}`

for (const [transport, url] of transports) {
  test(`${transport}: publishMany settles each message; a batch acks in one call`, async () => {
    const bus = await Bus.connect({ urls: [url()] })
    const q = queue('batch')
    await bus.declareQueue(q, { quorum: false })
    const msgs = [0, 1, 2, 3, 4, 5].map((i) => ({ routingKey: q, body: `m${i}`, messageId: `m${i}` }))
    msgs[2] = { routingKey: `nowhere.${randomUUID()}`, body: 'x' }
    msgs[4] = { routingKey: q, messageId: '' }
    const results = await bus.publishMany(msgs)
    assert.equal(results.length, 6)
    assert.equal(results[2].status, 'rejected')
    assert.equal(results[2].reason.code, 'COURIER_UNROUTABLE')
    assert.ok(results[2].reason instanceof Error)
    assert.equal(results[4].reason.field, 'message_id')
    assert.deepEqual(results.filter((r) => r.status === 'fulfilled').map((r) => r.value.messageId), ['m0', 'm1', 'm3', 'm5'])
    await assert.rejects(bus.publishMany([]), { code: 'COURIER_CONFIG', field: 'messages' })
    await assert.rejects(bus.publishMany([{ routingKey: 5 }]), { code: 'COURIER_CONFIG', field: 'messages[0].routing_key' })

    const consumer = await bus.consume(q, { prefetch: 5 })
    await assert.rejects(consumer.nextBatch({ max: 6, timeoutMs: 100 }), { code: 'COURIER_CONFIG', field: 'max' })
    await assert.rejects(consumer.nextBatch({ max: 2 }), { code: 'COURIER_CONFIG', field: 'timeout_ms' })
    const got = []
    for (let i = 0; i < 60 && got.length < 4; i++) {
      const batch = await consumer.nextBatch({ max: 5, timeoutMs: 500 })
      assert.ok(batch.length <= 5)
      if (got.length === 0 && batch.length > 0) await batch.deliveries[0].reject()
      got.push(...batch)
      await batch.ack()
    }
    assert.deepEqual(got.map((d) => d.messageId), ['m0', 'm1', 'm3', 'm5'])
    const empty = await consumer.nextBatch({ max: 5, timeoutMs: 0 })
    assert.equal(empty.length, 0)
    const stats = bus.stats()
    assert.deepEqual([stats.delivered, stats.acked, stats.rejected], [4, 3, 1])
    await consumer.close()
    assert.equal(await consumer.nextBatch({ max: 5, timeoutMs: 100 }), null)
    await bus.close()
  })

  test(`${transport}: expired messages are dead-lettered; the rest carry their budget`, async () => {
    const bus = await Bus.connect({ urls: [url()] })
    const q = queue('ttl')
    await bus.declareQueue(q, { quorum: false })
    await assert.rejects(bus.publish({ routingKey: q, ttlMs: 1000, delayMs: 2000 }), { code: 'COURIER_CONFIG', field: 'ttl_ms' })
    // A deadline long past, as from a publisher whose caller gave up.
    await bus.publish({ routingKey: q, body: 'stale', messageId: 'stale', headers: { 'x-courier-deadline': '1000' } })
    await bus.publish({ routingKey: q, body: 'fresh', messageId: 'fresh', ttlMs: 60000 })
    const consumer = await bus.consume(q)
    const d = await consumer.next({ timeoutMs: 5000 })
    assert.equal(d.messageId, 'fresh')
    assert.ok(d.remainingMs > 0 && d.remainingMs <= 60000, `${d.remainingMs}`)
    await d.ack()
    const dead = await bus.consume(`${q}.dlq`)
    const parked = await dead.next({ timeoutMs: 5000 })
    assert.equal(parked.messageId, 'stale')
    assert.equal(parked.remainingMs, 0)
    await parked.ack()
    assert.equal(bus.stats().expired, 1)
    await consumer.close()
    await dead.close()
    await bus.close()
  })
}

test('deadlineFromHeaders reads the caller\'s budget', () => {
  assert.equal(deadlineFromHeaders({ 'X-Courier-Deadline-Ms': '1500' }), 1500)
  assert.equal(deadlineFromHeaders(new Map([['accept', '*/*']])), null)
  assert.throws(() => deadlineFromHeaders({ 'x-courier-deadline-ms': 'soon' }), { code: 'COURIER_CONFIG', field: 'x-courier-deadline-ms' })
})
