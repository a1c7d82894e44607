'use strict'
// Settle-by-scope (`Delivery.process`), `Symbol.asyncDispose`, and `for await` loops that
// close their consumer when left early, on RabbitMQ and memory://.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')
const { Bus, Client } = require('..')
const { amqpUrl } = require('./support')

for (const [transport, url] of [['amqp', () => amqpUrl], ['memory', () => `memory://node-process-${randomUUID()}`]]) {
  test(`${transport}: process acks on success, nacks on a throw, leaves a settled delivery alone`, async () => {
    const bus = await Bus.connect({ urls: [url()] })
    const q = `courier-test.node.process.${randomUUID()}`
    await bus.declareQueue(q, { quorum: false })
    for (let i = 0; i < 4; i++) await bus.publish({ routingKey: q, messageId: `p${i}` })
    const consumer = await bus.consume(q, { dedup: false })
    const next = () => consumer.next({ timeoutMs: 5000 })

    let d = await next()
    assert.equal(await d.process(async (x) => x.messageId), 'p0')
    d = await next()
    await assert.rejects(d.process(() => { throw new Error('bad') }, { requeue: false }), /bad/)
    d = await next()
    assert.equal(d.isSettled, false)
    await d.process((x) => x.reject())
    assert.equal(d.isSettled, true)
    d = await next()
    await assert.rejects(d.process(async () => { throw new TypeError('again') }), TypeError)
    const again = await next()
    assert.equal(again.messageId, 'p3')
    assert.equal(again.redelivered, true)
    await again.process(() => {})
    await assert.rejects(again.process('nope'), { code: 'COURIER_CONFIG', field: 'fn' })
    const stats = bus.stats()
    assert.deepEqual([stats.acked, stats.nacked, stats.rejected], [2, 2, 1])
    await consumer.close()

    const dead = await bus.consume(`${q}.dlq`)
    const parked = [await dead.next({ timeoutMs: 5000 }), await dead.next({ timeoutMs: 5000 })]
    assert.deepEqual(parked.map((p) => p.messageId), ['p1', 'p2'])
    for (const p of parked) await p.ack()
    await dead[Symbol.asyncDispose]()
    assert.equal(await dead.next({ timeoutMs: 100 }), null, 'disposed')
    await bus[Symbol.asyncDispose]()
    await assert.rejects(bus.publish({ routingKey: q }), { code: 'COURIER_CLOSED' })
  })
}

test('leaving a for await loop closes the consumer; the unsettled rest returns to the queue', async () => {
  const bus = await Bus.connect({ urls: [`memory://node-process-${randomUUID()}`] })
  await bus.declareQueue('orders')
  await bus.publish({ routingKey: 'orders', body: '1' })
  await bus.publish({ routingKey: 'orders', body: '2' })
  const consumer = await bus.consume('orders')
  for await (const d of consumer) {
    await d.ack()
    break
  }
  assert.equal(await consumer.next({ timeoutMs: 1000 }), null, 'closed when the loop was left')
  const again = await bus.consume('orders')
  const d = await again.next({ timeoutMs: 5000 })
  assert.equal(d.body.toString(), '2')
  await d.ack()
  await again.close()
  await bus.close()
})

test('a client closes with Symbol.dispose', async () => {
  const client = new Client({ services: { a: { endpoints: ['http://127.0.0.1:9'] } } })
  client[Symbol.dispose]()
  await assert.rejects(client.get('a', '/'), { code: 'COURIER_CLOSED' })
})
