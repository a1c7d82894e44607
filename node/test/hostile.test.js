'use strict'
// Hostile input and hostile peers: limits, paths, header names and secrets (each once broke).
const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { randomUUID } = require('node:crypto')
const { Bus, Client } = require('..')
const { amqpUrl, startTestkit } = require('./support')

let kit
before(async () => { kit = await startTestkit(1) })
after(async () => { await kit.close() })
beforeEach(async () => { await kit.reset() })

test('an endless response body stops at the limit with COURIER_LIMIT_EXCEEDED', async () => {
  await kit.behave(0, { default: { stream_body_bytes: Number.MAX_SAFE_INTEGER } })
  const client = new Client({
    services: { orders: { endpoints: [kit.urls[0]] } },
    limits: { max_response_body_bytes: 1000000 },
  })
  await assert.rejects(client.get('orders', '/endless'), (err) => {
    assert.equal(err.code, 'COURIER_LIMIT_EXCEEDED')
    assert.equal(err.kind, 'limit_exceeded')
    assert.equal(err.limit, 'limits.max_response_body_bytes')
    assert.equal(err.max, 1000000)
    return true
  })
  assert.equal((await kit.requests(0)).total, 1, 'not retried')
})

test('a response head over the limit fails with COURIER_LIMIT_EXCEEDED', async () => {
  await kit.behave(0, { default: { headers: { 'x-big': 'a'.repeat(70000) } } })
  const client = new Client({ services: { orders: { endpoints: [kit.urls[0]] } } })
  await assert.rejects(client.get('orders', '/head'), {
    code: 'COURIER_LIMIT_EXCEEDED', limit: 'limits.max_response_header_bytes', max: 65536,
  })
  assert.equal((await kit.requests(0)).total, 1, 'not retried')
})

test('a request body over the limit is refused before sending', async () => {
  const client = new Client({ services: { orders: { endpoints: [kit.urls[0]] } }, limits: { max_request_body_bytes: 10 } })
  await assert.rejects(client.post('orders', '/x', { body: 'x'.repeat(11) }), { code: 'COURIER_CONFIG', field: 'body' })
  assert.equal((await kit.requests(0)).total, 0)
})

for (const path of ['../../admin', '%2e%2e/%2e%2e/admin', '..%2fadmin']) {
  test(`the path ${path} cannot climb out of the base path`, async () => {
    const client = new Client({ services: { orders: { endpoints: [`${kit.urls[0]}/api/v1`] } } })
    await assert.rejects(client.get('orders', path), { code: 'COURIER_CONFIG', field: 'path' })
    assert.equal((await kit.requests(0)).total, 0)
  })
}

test('a header name longer than 255 bytes rejects with COURIER_CONFIG, and the promise settles', async () => {
  const bus = await Bus.connect({ urls: ['memory://hostile-headers'] })
  await bus.declareQueue('q')
  await assert.rejects(
    bus.publish({ routingKey: 'q', body: 'x', headers: { ['h'.repeat(256)]: 'v' }, deadlineMs: 3000 }),
    { code: 'COURIER_CONFIG', field: 'headers' },
  )
  assert.equal(bus.stats().published, 0)
  await bus.close()
})

test('empty message ids from another publisher are not deduplicated', async () => {
  const amqplib = require('amqplib')
  const queue = `courier-test.node.empty-id.${randomUUID()}`
  const bus = await Bus.connect({ urls: [amqpUrl] })
  await bus.declareQueue(queue, { quorum: false, deadLetter: false })
  const conn = await amqplib.connect(amqpUrl)
  const ch = await conn.createConfirmChannel()
  for (const body of ['first', 'second']) ch.sendToQueue(queue, Buffer.from(body), { messageId: '' })
  await ch.waitForConfirms()
  const consumer = await bus.consume(queue)
  for (const expected of ['first', 'second']) {
    const d = await consumer.next({ timeoutMs: 5000 })
    assert.equal(d.body.toString(), expected)
    assert.equal(d.messageId, null, 'an empty id is no id')
    await d.ack()
  }
  await consumer.close()
  assert.equal(bus.stats().deduplicated, 0)
  await ch.deleteQueue(queue)
  await conn.close()
  await bus.close()
})

test('a bus reconnects after its connection is cut, and its consumer is subscribed again', async () => {
  const proxy = await kit.proxy(amqpUrl)
  const queue = `courier-test.node.reconnect.${randomUUID()}`
  const bus = await Bus.connect({ urls: [proxy.url(amqpUrl)], reconnect: { base_delay_ms: 50, max_delay_ms: 500 } })
  await bus.declareQueue(queue, { quorum: false, deadLetter: false })
  const consumer = await bus.consume(queue)
  await bus.publish({ routingKey: queue, body: 'before', messageId: 'before' })
  let d = await consumer.next({ timeoutMs: 10000 })
  assert.equal(d.messageId, 'before')
  await d.ack()
  await proxy.cut()
  await bus.publish({ routingKey: queue, body: 'after', messageId: 'after' }) // waits for the new connection
  d = await consumer.next({ timeoutMs: 30000 })
  assert.equal(d.messageId, 'after', 'the consumer was subscribed again')
  await d.ack()
  assert.ok(bus.stats().reconnects >= 1)
  assert.ok((await proxy.accepted()) >= 2)
  await consumer.close()
  await bus.close()
  const amqplib = require('amqplib')
  const conn = await amqplib.connect(amqpUrl)
  await (await conn.createChannel()).deleteQueue(queue)
  await conn.close()
})

// Every error path reachable with a credential-carrying URL: HTTP to a closed port (by
// service and by absolute URL), an upstream answering 503, AMQP with wrong credentials
// and to a closed port, invalid URLs. Searched: message, util.inspect (every property and
// the cause chain), JSON, and the stats.
test('passwords and tokens in URLs never appear in errors or stats', async () => {
  const { inspect } = require('node:util')
  const password = `pw-${randomUUID()}`
  const token = `tok-${randomUUID()}`
  const up = kit.urls[0].replace('http://', '')
  await kit.behave(0, { default: { status: 503 } })
  const shown = []
  const attempt = async (call) => {
    try { await call() } catch (err) { shown.push(`${err.message} | ${inspect(err, { depth: 5 })} | ${JSON.stringify(err)}`) }
  }
  const client = new Client({
    services: {
      pw: { endpoints: [`http://user:${password}@127.0.0.1:1`] },
      tok: { endpoints: [`http://${token}@127.0.0.1:1`] },
      pw503: { endpoints: [`http://user:${password}@${up}`] },
      tok503: { endpoints: [`http://${token}@${up}`] },
    },
  })
  for (const target of ['pw', 'tok', `http://user:${password}@127.0.0.1:1/x`, `http://${token}@127.0.0.1:1/x`]) {
    await attempt(() => client.get(target, '/', { deadlineMs: 2000 }))
  }
  for (const target of ['pw503', 'tok503']) assert.equal((await client.get(target, '/')).status, 503)
  const broker = amqpUrl.split('@')[1]
  for (const url of [
    `amqp://guest:${password}@${broker}`,
    `amqp://${token}@${broker}`,
    `amqp://guest:${password}@127.0.0.1:1/%2f`,
    `amqp://${token}@127.0.0.1:1/%2f`,
    `amqp://guest:${password}@127.0.0.1:99999`,
  ]) {
    await attempt(() => Bus.connect({ urls: [url] }))
  }
  for (const url of [`http://user:${password}@127.0.0.1:99999`, `ftp://${token}@h`]) {
    await attempt(() => new Client({ services: { s: { endpoints: [url] } } }))
  }
  assert.equal(shown.length, 11, shown.join('\n'))
  assert.ok(shown.filter((t) => t.includes('***@')).length >= 7, shown.join('\n'))
  shown.push(JSON.stringify(client.stats()), inspect(client))
  for (const text of shown) assert.ok(!text.includes(password) && !text.includes(token), text)
})

// napi's u32 conversion used to wrap: 2^32+5000 became 5 s, -1 about 49.7 days, NaN and
// Infinity 0. Every duration and count is now checked and named.
for (const [label, value] of [['2^32+5000', 2 ** 32 + 5000], ['2^63', 2 ** 63], ['Infinity', Infinity], ['NaN', NaN], ['-1', -1], ['1.5', 1.5]]) {
  test(`deadlineMs ${label} is COURIER_CONFIG on deadline_ms, not a wrapped number`, async () => {
    const client = new Client({ services: { orders: { endpoints: [kit.urls[0]] } } })
    await assert.rejects(client.get('orders', '/', { deadlineMs: value }), { code: 'COURIER_CONFIG', field: 'deadline_ms' })
    assert.equal((await kit.requests(0)).total, 0)
  })
}

test('bus durations and counts are range-checked too', async () => {
  const bus = await Bus.connect({ urls: ['memory://hostile-numbers'] })
  await bus.declareQueue('q')
  await assert.rejects(bus.publish({ routingKey: 'q', body: 'x', deadlineMs: 2 ** 32 + 5000 }), { code: 'COURIER_CONFIG', field: 'deadline_ms' })
  await assert.rejects(bus.request({ routingKey: 'q', body: 'x', timeoutMs: -1 }), { code: 'COURIER_CONFIG', field: 'timeout_ms' })
  await assert.rejects(bus.declareQueue('r', { ttlMs: NaN }), { code: 'COURIER_CONFIG', field: 'ttl_ms' })
  await assert.rejects(bus.declareQueue('r', { deliveryLimit: 2 ** 32 }), { code: 'COURIER_CONFIG', field: 'delivery_limit' })
  await assert.rejects(bus.consume('q', { prefetch: 65536 }), { code: 'COURIER_CONFIG', field: 'prefetch' })
  const consumer = await bus.consume('q')
  await assert.rejects(consumer.next({ timeoutMs: Infinity }), { code: 'COURIER_CONFIG', field: 'timeout_ms' })
  await consumer.close()
  await bus.close()
})

test('a panic inside core rejects the Promise with COURIER_INTERNAL (it stayed pending)', async () => {
  const native = require('../native.js')
  await assert.rejects(native.panicForTests(), (err) => {
    assert.equal(err.code, 'COURIER_INTERNAL')
    assert.match(err.message, /forced panic/)
    return true
  })
})

// Wrong JavaScript types used to surface as napi's raw converter errors (`StringExpected`,
// no field), a TypeError without a code, or a silent String(v): headers {a: 5} sent "5",
// headers 'x' became a header named "0". Each is now COURIER_CONFIG naming the argument,
// and every Promise-returning method rejects instead of throwing.
test('wrong argument types reject with COURIER_CONFIG naming the argument', async () => {
  const client = new Client({ services: { orders: { endpoints: [kit.urls[0]] } } })
  const bus = await Bus.connect({ urls: ['memory://hostile-types'] })
  await bus.declareQueue('q')
  const cases = [
    [() => client.get(5), 'target'],
    [() => client.get('orders', {}), 'path'],
    [() => client.get('orders', '/', 5), 'options'],
    [() => client.post('orders', '/', { body: 5 }), 'body'],
    [() => client.post('orders', '/', { headers: { a: 5 } }), 'headers.a'],
    [() => client.post('orders', '/', { headers: 'x' }), 'headers'],
    [() => client.get('orders', '/', { query: { a: {} } }), 'query.a'],
    [() => client.post('orders', '/', { idempotencyKey: 5 }), 'idempotency_key'],
    [() => client.get('orders', '/', { deadlineMs: '5' }), 'deadline_ms'],
    [() => client.get('orders', '/', { signal: {} }), 'signal'],
    [() => bus.publish(null), 'routing_key'],
    [() => bus.publish({ routingKey: 5, body: 'x' }), 'routing_key'],
    [() => bus.publish({ routingKey: 'q', body: 5 }), 'body'],
    [() => bus.publish({ routingKey: 'q', body: 'x', headers: { a: 5 } }), 'headers.a'],
    [() => bus.publish({ routingKey: 'q', body: 'x', messageId: 5 }), 'message_id'],
    [() => bus.publish({ routingKey: 'q', body: 'x', persistent: 'yes' }), 'persistent'],
    [() => bus.declareQueue(5), 'queue'],
    [() => bus.declareQueue('r', { quorum: 'yes' }), 'quorum'],
    [() => bus.consume('q', { prefetch: '10' }), 'prefetch'],
    [() => bus.bind('q', 5, 'k'), 'exchange'],
    [() => bus.request({ routingKey: 'q', body: 'x', headers: 'h' }), 'headers'],
  ]
  for (const [call, field] of cases) {
    const pending = call()
    assert.ok(pending instanceof Promise, `${field}: returns a Promise`)
    await assert.rejects(pending, (err) => {
      assert.equal(err.code, 'COURIER_CONFIG', `${field}: ${err.message}`)
      assert.equal(err.kind, 'config')
      assert.equal(err.field, field)
      return true
    })
  }
  assert.equal((await kit.requests(0)).total, 0)
  assert.equal(bus.stats().published, 0)
  await bus.close()
})
