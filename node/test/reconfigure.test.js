'use strict'
// reconfigure from Node: swapped under load without losing a call, rejected whole when
// invalid, calls in flight finishing under the old configuration.
const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { Client } = require('..')
const { startTestkit } = require('./support')

let kit
before(async () => { kit = await startTestkit(3) })
after(async () => { await kit.close() })
beforeEach(async () => { await kit.reset() })

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const trim = (url) => url.replace(/\/$/, '')

test('reconfigure under 64 concurrent calls loses none', async () => {
  const a = { services: { swap: { endpoints: kit.urls.slice(0, 2) } } }
  const b = { services: { swap: { endpoints: kit.urls.slice(1, 3), balancer: 'round_robin' } } }
  const c = new Client(a)
  let done = false
  const callers = Promise.all(Array.from({ length: 64 }, async () => {
    for (let i = 0; i < 20; i++) assert.equal((await c.get('swap', '/x')).status, 200)
  })).finally(() => { done = true })
  let swaps = 0
  while (!done && swaps < 200) {
    c.reconfigure(swaps % 2 === 0 ? b : a)
    swaps++
    await sleep(5)
  }
  await callers
  assert.ok(swaps >= 2, String(swaps))
  let seen = 0
  for (let i = 0; i < 3; i++) seen += (await kit.requests(i)).total
  assert.equal(seen, 64 * 20)
  const s = c.stats().services.swap
  assert.deepEqual([s.requests, s.in_flight], [64 * 20, 0])
})

test('an invalid config is rejected whole', async () => {
  const c = new Client({ services: { keep: { endpoints: [kit.urls[0]] } } })
  assert.throws(
    () => c.reconfigure({ services: { keep: { endpoints: [kit.urls[1]] }, other: { endpoints: ['not a url'] } } }),
    { code: 'COURIER_CONFIG', field: 'services.other.endpoints[0].url' },
  )
  assert.equal(trim((await c.get('keep', '/x')).endpoint), trim(kit.urls[0]))
  await assert.rejects(c.get('other', '/x'), { code: 'COURIER_CONFIG' })
})

test('a call in flight finishes under the old config', async () => {
  await kit.behave(0, { default: { latency_ms: 300 } })
  const c = new Client({ services: { old: { endpoints: [kit.urls[0]] } } })
  const inFlight = c.get('old', '/x')
  for (let i = 0; i < 200 && (await kit.requests(0)).total === 0; i++) await sleep(5)
  c.reconfigure({ services: { moved: { endpoints: [kit.urls[1]] } } })
  assert.equal(trim((await inFlight).endpoint), trim(kit.urls[0]))
  await assert.rejects(c.get('old', '/x'), { code: 'COURIER_CONFIG' })
  assert.equal(trim((await c.get('moved', '/x')).endpoint), trim(kit.urls[1]))
  c.close()
  assert.throws(() => c.reconfigure({ services: {} }), { code: 'COURIER_CLOSED' })
})
