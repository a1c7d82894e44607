'use strict'
// TraceContext, `trace` on calls, publishes and requests, and the active OpenTelemetry
// span as the default parent.
const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { promisify } = require('node:util')
const api = require('@opentelemetry/api')
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks')
const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base')
const { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } = require('@opentelemetry/core')
const { Bus, Client, TraceContext } = require('..')
const { startTestkit } = require('./support')

const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'

// Each test file runs in a process of its own, so these globals stay in this file.
api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
const tracer = new BasicTracerProvider().getTracer('courier-tests')

/** Runs `fn` inside a new active span and ends the span afterwards. */
const inSpan = (name, fn) => tracer.startActiveSpan(name, async (span) => {
  try {
    return await fn(span)
  } finally {
    span.end()
  }
})

let kit
before(async () => { kit = await startTestkit(1) })
after(async () => { await kit.close() })
beforeEach(async () => { await kit.reset() })

const config = () => ({ services: { orders: { endpoints: [kit.urls[0]] } } })
let brokers = 0
const memoryUrl = (name) => `memory://node-trace-${process.pid}-${++brokers}-${name}`
const sentTraceparents = async () => (await kit.requests(0)).requests.map((r) => r.headers.traceparent)

// --- the TraceContext API -------------------------------------------------------------

test('TraceContext.parse exposes ids, flags and tracestate', () => {
  const ctx = TraceContext.parse(TP, 'vendor=abc')
  assert.deepEqual([ctx.traceId, ctx.spanId, ctx.sampled], [TRACE_ID, '00f067aa0ba902b7', true])
  assert.deepEqual([ctx.traceparent, ctx.tracestate, String(ctx)], [TP, 'vendor=abc', TP])
  assert.deepEqual(ctx.toCarrier(), { traceparent: TP, tracestate: 'vendor=abc' })
  const unsampled = TraceContext.parse(TP.slice(0, -2) + '00')
  assert.deepEqual([unsampled.sampled, unsampled.tracestate], [false, null])
})

test('an invalid traceparent throws COURIER_CONFIG naming it', () => {
  for (const bad of ['', '00-bad', TP.replace(TRACE_ID, '0'.repeat(32)), TP.slice(0, -2) + 'zz']) {
    assert.throws(() => TraceContext.parse(bad), (e) => e.code === 'COURIER_CONFIG' && e.field === 'traceparent', bad)
  }
})

test('a child keeps the trace id and gets a new span id', () => {
  const parent = TraceContext.parse(TP, 'vendor=abc')
  const [a, b] = [parent.child(), parent.child()]
  assert.equal(a.traceId, TRACE_ID)
  assert.equal(b.traceId, TRACE_ID)
  assert.equal(new Set([parent.spanId, a.spanId, b.spanId]).size, 3)
  assert.deepEqual([a.sampled, a.tracestate], [true, 'vendor=abc'], 'flags and tracestate carry over')
})

test('a new root round-trips through its carrier', () => {
  const root = TraceContext.newRoot()
  assert.match(root.traceId, /^[0-9a-f]{32}$/)
  assert.match(root.spanId, /^[0-9a-f]{16}$/)
  assert.equal(root.sampled, true)
  assert.notEqual(TraceContext.newRoot().traceId, root.traceId)
  const carrier = root.toCarrier()
  assert.ok(TraceContext.parse(carrier.traceparent).equals(root))
  assert.ok(TraceContext.fromCarrier(carrier).equals(root))
  assert.equal(TraceContext.fromCarrier({ TraceParent: TP }).traceId, TRACE_ID)
  assert.notEqual(TraceContext.fromCarrier({}).traceId, TRACE_ID, 'no parent: a new trace')
})

// --- trace takes a TraceContext or a carrier -------------------------------------------

test('a TraceContext is the parent of a call; the response exposes what was sent', async () => {
  const parent = TraceContext.parse(TP)
  const resp = await new Client(config()).get('orders', '/t', { trace: parent })
  const [sent] = await sentTraceparents()
  assert.equal(sent.split('-')[1], TRACE_ID)
  assert.ok(resp.traceContext.equals(TraceContext.parse(sent)))
  assert.deepEqual(resp.trace, { traceparent: sent }, 'the carrier object still works')
  assert.notEqual(resp.traceContext.spanId, parent.spanId, 'the attempt is a child span')
  const again = await new Client(config()).get('orders', '/t', { trace: { traceparent: TP } })
  assert.equal(again.traceContext.traceId, TRACE_ID)
})

test('memory: publish and request take a TraceContext; receipts and deliveries expose it', async () => {
  const parent = TraceContext.parse(TP)
  const bus = await Bus.connect({ urls: [memoryUrl('explicit')] })
  await bus.declareQueue('orders')
  const receipt = await bus.publish({ routingKey: 'orders', body: 'x', trace: parent })
  assert.equal(receipt.traceContext.traceId, TRACE_ID)
  assert.deepEqual(receipt.trace, receipt.traceContext.toCarrier())
  const consumer = await bus.consume('orders')
  const d = await consumer.next({ timeoutMs: 5000 })
  assert.ok(d.traceContext.equals(receipt.traceContext))
  assert.deepEqual(d.trace, receipt.trace)
  await d.ack()
  await consumer.close()

  await bus.declareQueue('pricing')
  const server = await bus.serve('pricing')
  const serving = (async () => {
    const req = await server.next({ timeoutMs: 5000 })
    await req.reply('ok')
    await req.ack()
    return req.traceContext
  })()
  const reply = await bus.request({ routingKey: 'pricing', body: 'q', trace: parent })
  assert.equal((await serving).traceId, TRACE_ID)
  assert.equal(reply.traceContext.traceId, TRACE_ID, 'the reply continues the request\'s trace')
  await server.close()
  await bus.close()
})

// --- the active OpenTelemetry span as the default parent ---------------------------------

test('the active OpenTelemetry span is the parent of a call (no propagator registered)', async () => {
  const client = new Client(config())
  const [resp, ids] = await inSpan('checkout', async (span) => [await client.get('orders', '/t'), span.spanContext()])
  const [sent] = await sentTraceparents()
  assert.equal(sent.split('-')[1], ids.traceId, 'the testkit saw the span\'s trace')
  assert.equal(resp.traceContext.traceId, ids.traceId)
  assert.notEqual(resp.traceContext.spanId, ids.spanId, 'courier\'s attempt is a child')
  const outside = await client.get('orders', '/t')
  assert.notEqual(outside.traceContext.traceId, ids.traceId, 'outside the span: a new trace')
})

test('a registered propagator writes the carrier: tracestate and baggage travel too', async () => {
  api.propagation.setGlobalPropagator(new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
  }))
  try {
    const bus = await Bus.connect({ urls: [memoryUrl('propagator')] })
    await bus.declareQueue('orders')
    const remote = api.trace.wrapSpanContext({
      traceId: TRACE_ID, spanId: '00f067aa0ba902b7', traceFlags: api.TraceFlags.SAMPLED,
      traceState: api.createTraceState('vendor=abc'),
    })
    let ctx = api.trace.setSpan(api.context.active(), remote)
    ctx = api.propagation.setBaggage(ctx, api.propagation.createBaggage({ tenant: { value: 'acme' } }))
    const receipt = await api.context.with(ctx, () => bus.publish({ routingKey: 'orders', body: 'x' }))
    assert.equal(receipt.traceContext.traceId, TRACE_ID)
    assert.equal(receipt.traceContext.tracestate, 'vendor=abc')
    assert.equal(receipt.trace.baggage, 'tenant=acme')
    await bus.close()
  } finally {
    api.propagation.disable()
  }
})

test('an unsampled span is continued unsampled, with its tracestate (no propagator)', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl('unsampled')] })
  await bus.declareQueue('orders')
  const remote = api.trace.wrapSpanContext({
    traceId: TRACE_ID, spanId: '00f067aa0ba902b7', traceFlags: api.TraceFlags.NONE,
    traceState: api.createTraceState('vendor=abc'),
  })
  const receipt = await api.context.with(api.trace.setSpan(api.context.active(), remote),
    () => bus.publish({ routingKey: 'orders', body: 'x' }))
  assert.deepEqual([receipt.traceContext.traceId, receipt.traceContext.sampled], [TRACE_ID, false])
  assert.equal(receipt.traceContext.tracestate, 'vendor=abc')
  await bus.close()
})

test('an explicit trace wins over the active span', async () => {
  const resp = await inSpan('checkout', () => new Client(config()).get('orders', '/t', { trace: { traceparent: TP } }))
  assert.equal(resp.traceContext.traceId, TRACE_ID)
})

test('courier\'s traceparents parse with OpenTelemetry\'s W3CTraceContextPropagator', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl('w3c')] })
  await bus.declareQueue('orders')
  const [receipt, resp, ids] = await inSpan('publish', async (span) => [
    await bus.publish({ routingKey: 'orders', body: 'x' }),
    await new Client(config()).get('orders', '/t'),
    span.spanContext(),
  ])
  const w3c = new W3CTraceContextPropagator()
  for (const { trace, traceContext } of [receipt, resp]) {
    const got = api.trace.getSpanContext(w3c.extract(api.ROOT_CONTEXT, trace, api.defaultTextMapGetter))
    assert.ok(got && api.trace.isSpanContextValid(got) && got.isRemote)
    assert.deepEqual([got.traceId, got.spanId], [traceContext.traceId, traceContext.spanId])
    assert.equal(got.traceId, ids.traceId)
    assert.equal((got.traceFlags & api.TraceFlags.SAMPLED) !== 0, traceContext.sampled)
  }
  await bus.close()
})

test('memory: 1,000 concurrent async tasks in their own spans each publish under their own trace', async () => {
  const bus = await Bus.connect({ urls: [memoryUrl('concurrent')] })
  await bus.declareQueue('events', { quorum: false, deadLetter: false })
  const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => inSpan(`task-${i}`, async (span) => {
    // Yield first, so every task is suspended inside its span before any publishes.
    await new Promise((resolve) => setImmediate(resolve))
    const receipt = await bus.publish({ routingKey: 'events', body: String(i) })
    return [span.spanContext().traceId, receipt.traceContext.traceId]
  })))
  const mixed = results.filter(([mine, sent]) => mine !== sent)
  assert.equal(mixed.length, 0, `${mixed.length} of 1000 publishes carried another task's trace`)
  assert.equal(new Set(results.map(([mine]) => mine)).size, 1000, 'each task had a trace of its own')
  await bus.close()
})

test('100 concurrent calls in their own spans each reach the upstream under their own trace', async () => {
  const client = new Client(config())
  const results = await Promise.all(Array.from({ length: 100 }, (_, i) => inSpan(`call-${i}`, async (span) => {
    await new Promise((resolve) => setImmediate(resolve))
    const resp = await client.get('orders', `/t/${i}`)
    return [span.spanContext().traceId, resp.traceContext.traceId, resp.json().headers.traceparent.split('-')[1]]
  })))
  for (const [mine, sent, received] of results) {
    assert.deepEqual([sent, received], [mine, mine], 'the upstream saw the task\'s own trace')
  }
})

test('without @opentelemetry/api installed, a publish starts a new trace and nothing throws', async () => {
  // A process of its own in which requiring the API fails, as when it is not installed.
  const script = `
    const Module = require('node:module')
    const load = Module._load
    Module._load = function (request, ...rest) {
      if (request.startsWith('@opentelemetry/')) throw Object.assign(new Error('not installed'), { code: 'MODULE_NOT_FOUND' })
      return load.call(this, request, ...rest)
    }
    const { Bus } = require(${JSON.stringify(path.join(__dirname, '..'))})
    ;(async () => {
      const bus = await Bus.connect({ urls: ['memory://node-no-otel'] })
      await bus.declareQueue('orders')
      const a = await bus.publish({ routingKey: 'orders', body: 'a' })
      const b = await bus.publish({ routingKey: 'orders', body: 'b' })
      await bus.close()
      process.stdout.write(JSON.stringify([a.traceContext.traceId, b.traceContext.traceId]))
    })()
  `
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script])
  const [a, b] = JSON.parse(stdout)
  assert.match(a, /^[0-9a-f]{32}$/)
  assert.notEqual(a, b, 'each publish a new trace')
})
