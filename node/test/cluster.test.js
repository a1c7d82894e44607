'use strict'
// Against the three-node RabbitMQ cluster of tests/scripts/ensure-rabbitmq-cluster.sh: the
// queue leader's node killed mid-stream, and a partition of the client from its node.
// `make test-cluster` runs them (it sets COURIER_CLUSTER_URLS); a plain `npm test` skips them.
// The Rust suite (core/tests/cluster) has the same scenarios and more.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { randomUUID } = require('node:crypto')
const { Bus } = require('..')
const { startTestkit } = require('./support')

const skip = process.env.COURIER_CLUSTER_URLS ? false : 'needs the three-node cluster: make test-cluster'
const script = path.join(__dirname, '..', '..', 'tests', 'scripts', 'ensure-rabbitmq-cluster.sh')

/** `ensure-rabbitmq-cluster.sh ARGS...`, its stdout. */
function cluster(...args) {
  return new Promise((resolve, reject) => {
    execFile('bash', [script, ...args], { timeout: 480_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ensure-rabbitmq-cluster.sh ${args.join(' ')}: ${stderr}`))
      else resolve(stdout.trim())
    })
  })
}

/** The node URLs once all three run (an earlier test may have left one down). */
async function clusterUrls() {
  for (const node of ['1', '2', '3']) await cluster('start', node)
  const urls = process.env.COURIER_CLUSTER_URLS.split(/\s+/).filter(Boolean)
  assert.equal(urls.length, 3)
  return urls
}

const busConfig = (urls) => ({
  urls,
  reconnect: { base_delay_ms: 100, max_delay_ms: 2000 },
  publish_deadline_ms: 60_000,
  max_unconfirmed: 256,
})
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let kit
before(async () => { if (!skip) kit = await startTestkit(1) })
after(async () => { if (kit) await kit.close() })

// RabbitMQ 3.10.8 sometimes confirms a publish during the failover and then does not keep
// it (see core/tests/cluster): a run that ends with confirmed messages missing, and no other
// failure, is repeated once, saying so; a second loss fails.
test('killing the queue leader loses and duplicates nothing', { skip, timeout: 900_000 }, async () => {
  let missing = await killTheLeader()
  if (missing.length > 0) {
    console.log(`the broker confirmed ${missing.length} message(s) it did not keep (${missing.slice(0, 10)}); once more`)
    missing = await killTheLeader()
    assert.deepEqual(missing, [], 'lost in two runs in a row')
  }
})

/** One run: 10,000 publishes, the leader's node killed at 30% confirmed, a dedup consumer
 * on another node. Asserts everything but loss; resolves to the missing ids. */
async function killTheLeader() {
  const n = 10_000
  const urls = await clusterUrls()
  const q = `courier-test.node.cluster.leader.${randomUUID()}`
  const publisher = await Bus.connect(busConfig(urls))
  await publisher.declareQueue(q)
  const leader = Number(await cluster('leader', q))
  const other = (leader % 3) + 1
  const consumerBus = await Bus.connect(busConfig([...urls.slice(other - 1), ...urls.slice(0, other - 1)]))
  const consumer = await consumerBus.consume(q, { prefetch: 100, dedup: true })

  const killer = (async () => {
    while (publisher.stats().confirmed < (n * 3) / 10) await sleep(20)
    const at = publisher.stats().confirmed
    await cluster('kill', String(leader))
    return at
  })()
  const started = Date.now()
  const body = Buffer.alloc(256, 'x')
  const failed = []
  let next = 0
  // 256 in flight: each lane publishes the next message as its last one settles.
  await Promise.all(Array.from({ length: 256 }, async () => {
    while (next < n) {
      const i = next++
      try {
        await publisher.publish({ routingKey: q, body, messageId: `m-${i}`, persistent: true })
      } catch (e) {
        failed.push(e)
      }
    }
  }))
  const killedAt = await killer
  assert.equal(failed.length, 0, `${failed.length} of ${n} failed: ${failed.slice(0, 5).map((e) => e.message)}`)
  const stats = publisher.stats()
  console.log(`leader node ${leader} killed at ${killedAt} confirmed; ${n} publishes in ${Date.now() - started} ms; ${JSON.stringify(stats)}`)
  assert.deepEqual([stats.published, stats.confirmed], [n, n])

  const processed = new Map()
  // Until all arrived, or nothing did for 20 s.
  let idleSince = Date.now()
  while (processed.size < n && Date.now() - idleSince < 20_000) {
    let d
    try {
      d = await consumer.next({ timeoutMs: 1000 })
    } catch {
      continue // its node is up; a reconnect or the leader's move may still show
    }
    assert.notEqual(d, null)
    idleSince = Date.now()
    processed.set(d.messageId, (processed.get(d.messageId) || 0) + 1)
    await d.ack()
  }
  await cluster('start', String(leader))
  let late = 0
  for (;;) {
    let d
    try {
      d = await consumer.next({ timeoutMs: 3000 })
    } catch (e) {
      assert.equal(e.code, 'COURIER_TIMEOUT')
      break
    }
    late += 1
    processed.set(d.messageId, (processed.get(d.messageId) || 0) + 1)
    await d.ack()
  }
  const twice = [...processed].filter(([, count]) => count > 1)
  const missing = Array.from({ length: n }, (_, i) => `m-${i}`).filter((id) => !processed.has(id))
  console.log(`processed ${processed.size} distinct, ${missing.length} missing, ${twice.length} twice, ${late} late; consumer ${JSON.stringify(consumerBus.stats())}`)
  assert.deepEqual(twice, [], 'none processed twice')
  assert.equal(late, 0)
  await consumer.close()
  await consumerBus.close()
  await publisher.close()
  return missing
}

// The client's node goes silent (the proxy's blackhole: nothing closed, no bytes either
// way); with heartbeat=2 the bus notices within two periods and moves to the next node.
test('a partition moves the bus to another node', { skip, timeout: 300_000 }, async () => {
  const n = 20
  const urls = await clusterUrls()
  const proxy = await kit.proxy(urls[0])
  const partitioned = `${proxy.url(urls[0])}?heartbeat=2`
  const bus = await Bus.connect(busConfig([partitioned, urls[1], urls[2]]))
  const q = `courier-test.node.cluster.partition.${randomUUID()}`
  const silent = `courier-test.node.cluster.silent.${randomUUID()}`
  await bus.declareQueue(q)
  await bus.declareQueue(silent)

  await proxy.faults({ blackhole: true })
  const started = Date.now()
  const request = bus.request({ routingKey: silent, body: '?', timeoutMs: 5000 })
  const requestDone = request.then(() => null, (e) => e)
  const publishes = Promise.all(Array.from({ length: n }, (_, i) => bus.publish({ routingKey: q, body: 'x', messageId: `p-${i}` })))
  while (bus.stats().reconnects < 1) {
    assert.ok(Date.now() - started < 60_000, 'the partition was not noticed within 60 s')
    await sleep(50)
  }
  console.log(`partition detected and left after ${Date.now() - started} ms (heartbeat 2 s)`)
  await publishes
  const failure = await requestDone
  assert.ok(failure && ['COURIER_TIMEOUT', 'COURIER_CONNECT'].includes(failure.code), `the request failed: ${failure}`)
  const stats = bus.stats()
  assert.equal(stats.rpc_in_flight, 0, 'no correlation entry left')
  assert.deepEqual([stats.published, stats.confirmed], [n, n])
  assert.ok(stats.resent >= 1, `the publishes on the silent connection went again: ${JSON.stringify(stats)}`)

  const consumer = await bus.consume(q)
  const seen = new Set()
  while (seen.size < n) {
    const d = await consumer.next({ timeoutMs: 10_000 })
    seen.add(d.messageId)
    await d.ack()
  }
  await consumer.close()
  await bus.close()
})
