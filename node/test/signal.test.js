'use strict'
// AbortSignal on every waiting bus operation: the Promise rejects with the signal's
// reason at once, and the Rust future is dropped, releasing what it held.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')
const { setTimeout: sleep } = require('node:timers/promises')
const { Bus } = require('..')
const { amqpUrl } = require('./support')

/** Polls `check` every 10 ms, 5 s at most. */
async function eventually(check, what) {
  for (let i = 0; i < 500; i++) {
    if (check()) return
    await sleep(10)
  }
  assert.fail(`not within 5 s: ${what}`)
}

for (const [transport, url] of [['amqp', () => amqpUrl], ['memory', () => `memory://node-signal-${randomUUID()}`]]) {
  test(`${transport}: an aborted request rejects with the reason and frees its reply slot`, async () => {
    const bus = await Bus.connect({ urls: [url()] }, { signal: new AbortController().signal })
    const q = `courier-test.node.signal.${randomUUID()}`
    await bus.declareQueue(q, { quorum: false })
    const server = await bus.serve(q) // takes the request and never answers
    const ac = new AbortController()
    const pending = bus.request({ routingKey: q, body: 'x', timeoutMs: 30000, signal: ac.signal })
    await eventually(() => bus.stats().rpc_in_flight === 1, 'the request in flight')
    ac.abort(new Error('caller gave up'))
    await assert.rejects(pending, /caller gave up/)
    await eventually(() => bus.stats().rpc_in_flight === 0, 'the reply slot freed')
    await server.close()
    await bus.close()
  })

  test(`${transport}: topology calls under a signal that does not abort complete`, async () => {
    const bus = await Bus.connect({ urls: [url()] })
    const { signal } = new AbortController()
    const q = `courier-test.node.signal-topology.${randomUUID()}`
    await bus.declareQueue(q, { quorum: false, deadLetter: false, signal })
    await bus.declareExchange(`${q}.x`, 'direct', { signal })
    await bus.bind(q, `${q}.x`, 'k', { signal })
    const server = await bus.serve(q, { signal })
    await server.close()
    await bus.publish({ exchange: `${q}.x`, routingKey: 'k', body: 'routed' })
    const consumer = await bus.consume(q)
    const d = await consumer.next({ timeoutMs: 5000 })
    assert.equal(d.body.toString(), 'routed')
    await d.ack()
    await consumer.close()
    await bus.close()
  })

  test(`${transport}: an aborted next leaves the delivery for the next call`, async () => {
    const bus = await Bus.connect({ urls: [url()] })
    const q = `courier-test.node.signal-next.${randomUUID()}`
    await bus.declareQueue(q, { quorum: false })
    const consumer = await bus.consume(q)
    const ac = new AbortController()
    const waiting = consumer.next({ signal: ac.signal })
    ac.abort()
    await assert.rejects(waiting, { name: 'AbortError' })
    const batchAc = new AbortController()
    const batch = consumer.nextBatch({ max: 5, timeoutMs: 30000, signal: batchAc.signal })
    batchAc.abort()
    await assert.rejects(batch, { name: 'AbortError' })
    await bus.publish({ routingKey: q, body: 'later', messageId: 'm1' })
    const d = await consumer.next({ timeoutMs: 5000 })
    assert.equal(d.messageId, 'm1')
    await d.ack()
    await consumer.close()
    await bus.close()
  })

  test(`${transport}: an already aborted signal publishes nothing; a wrong one is a config error`, async () => {
    const bus = await Bus.connect({ urls: [url()] })
    const q = `courier-test.node.signal-pub.${randomUUID()}`
    await bus.declareQueue(q, { quorum: false })
    await assert.rejects(bus.publish({ routingKey: q, signal: AbortSignal.abort('no') }), (e) => e === 'no')
    await assert.rejects(bus.publishMany([{ routingKey: q }], { signal: AbortSignal.abort('no') }), (e) => e === 'no')
    await assert.rejects(bus.request({ routingKey: q, signal: AbortSignal.abort('no') }), (e) => e === 'no')
    await assert.rejects(bus.consume(q, { signal: AbortSignal.abort('no') }), (e) => e === 'no')
    await assert.rejects(bus.serve(q, { signal: AbortSignal.abort('no') }), (e) => e === 'no')
    await assert.rejects(bus.declareQueue(`${q}.never`, { quorum: false, signal: AbortSignal.abort('no') }), (e) => e === 'no')
    await assert.rejects(bus.declareExchange(`${q}.never`, 'topic', { signal: AbortSignal.abort('no') }), (e) => e === 'no')
    await assert.rejects(bus.bind(q, 'amq.topic', 'k', { signal: AbortSignal.abort('no') }), (e) => e === 'no')
    await assert.rejects(bus.bind(q, 'amq.topic', 'k', { signal: 'soon' }), { code: 'COURIER_CONFIG', field: 'signal' })
    await assert.rejects(bus.publish({ routingKey: q, signal: 'soon' }), { code: 'COURIER_CONFIG', field: 'signal' })
    assert.equal(bus.stats().published, 0)
    await assert.rejects(Bus.connect({ urls: [url()] }, { signal: AbortSignal.abort('no') }), (e) => e === 'no')
    await bus.close()
  })
}
