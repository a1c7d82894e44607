'use strict'
// `Delivery.forward`: the next workflow step under an id derived from the current one
// (uuid5, the same in every language), acked after the confirm.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { createHash, randomUUID } = require('node:crypto')
const { Bus } = require('..')
const { amqpUrl } = require('./support')

// docs/messaging.md: uuid5(namespace, "<id>\n<exchange>\n<routing key>"), computed here
// by hand from RFC 9562 so the test does not trust courier's own derivation.
function nextId(messageId, exchange, routingKey) {
  const namespace = Buffer.from('5b1f4c8e5d4e4f0a9a532c7e61b0d3a4', 'hex')
  const hash = createHash('sha1').update(namespace).update(`${messageId}\n${exchange}\n${routingKey}`).digest()
  hash[6] = (hash[6] & 0x0f) | 0x50
  hash[8] = (hash[8] & 0x3f) | 0x80
  const hex = hash.subarray(0, 16).toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

for (const [transport, url] of [['amqp', () => amqpUrl], ['memory', () => `memory://node-forward-${randomUUID()}`]]) {
  test(`${transport}: forward hands on once under a derived id, then acks`, async () => {
    const bus = await Bus.connect({ urls: [url()] })
    const [first, last] = ['first', 'last'].map((step) => `courier-test.node.forward-${step}.${randomUUID()}`)
    for (const q of [first, last]) await bus.declareQueue(q, { quorum: false, deadLetter: false })
    const receipt = await bus.publish({ routingKey: first, body: 'order', messageId: 'order-1' })
    // A second copy stands for the redelivery after a crash between confirm and ack.
    await bus.publish({ routingKey: first, body: 'order', messageId: 'order-1', trace: receipt.traceContext })
    const step1 = await bus.consume(first, { dedup: false })
    let sent
    for (let i = 0; i < 2; i++) {
      const d = await step1.next({ timeoutMs: 5000 })
      sent = await d.forward({ routingKey: last, body: 'step 2', headers: { 'x-step': '2' } })
      assert.equal(sent.messageId, nextId('order-1', '', last))
      assert.equal(sent.traceContext.traceId, receipt.traceContext.traceId)
      await assert.rejects(d.ack(), { code: 'COURIER_CLOSED' })
    }
    await step1.close()
    const step2 = await bus.consume(last)
    const d = await step2.next({ timeoutMs: 5000 })
    assert.deepEqual([d.messageId, d.body.toString(), d.headers['x-step']], [sent.messageId, 'step 2', '2'])
    await assert.rejects(d.forward({ routingKey: first, body: 'x', messageId: 'mine' }), { code: 'COURIER_CONFIG', field: 'message_id' })
    await d.ack()
    await assert.rejects(step2.next({ timeoutMs: 300 }), { code: 'COURIER_TIMEOUT' })
    const stats = bus.stats()
    assert.deepEqual([stats.acked, stats.deduplicated], [3, 1])
    await step2.close()
    await bus.close()
  })
}
