'use strict'
// Telemetry: core log records in setLogger and on the `courier:log` diagnostics channel,
// the log level, a trace connected across the host's OpenTelemetry SDK and courier's
// exporter (child processes: courier reads the environment at load), unsampled parents,
// metrics as Prometheus text and over OTLP, and configuration errors.
const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const diagnosticsChannel = require('node:diagnostics_channel')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { promisify } = require('node:util')
const courier = require('..')
const { Bus, Client, setLogger, setLogLevel, logLevel, configureTelemetry, flushTelemetry, metricsText } = courier
const { startTestkit } = require('./support')

let kit
before(async () => { kit = await startTestkit(1) })
after(async () => {
  setLogger(null)
  await kit.close()
})
beforeEach(async () => {
  await kit.reset()
  await kit.otlp.reset()
})

const failingOnce = { script: [{ status: 503 }] }
const client = (service, endpoint = kit.urls[0]) => new Client({ services: { [service]: { endpoints: [endpoint] } } })
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits (up to 10 s: records reach JavaScript asynchronously by design) for a record that `match`es. */
async function until(records, match) {
  for (let i = 0; i < 200; i++) {
    const found = records.find(match)
    if (found) return found
    await delay(50)
  }
  assert.fail(`no matching record in ${JSON.stringify(records, null, 1)}`)
}

const isRetry = (service) => (r) => r.message.startsWith('retry') && r.fields.service === service

// --- logs ------------------------------------------------------------------------------

test('core log records reach setLogger and the courier:log channel, at the level set, without secrets', async () => {
  const logged = []
  const published = []
  const onPublish = (record) => published.push(record)
  setLogger((record) => logged.push(record))
  diagnosticsChannel.subscribe(courier.LOG_CHANNEL, onPublish)
  try {
    assert.equal(courier.LOG_CHANNEL, 'courier:log')
    if (!process.env.COURIER_LOG) assert.equal(logLevel(), 'warn', 'the default without COURIER_LOG')
    setLogLevel('debug')
    assert.equal(logLevel(), 'debug')

    // Credentials in the endpoint URL must show in no record.
    const secret = kit.urls[0].replace('http://', 'http://ops:s3cret@')
    await kit.behave(0, failingOnce)
    const resp = await client('node-log', secret).get('node-log', '/items')
    assert.equal(resp.attempts, 2)

    const retry = await until(logged, isRetry('node-log'))
    assert.deepEqual(Object.keys(retry), ['level', 'target', 'message', 'fields'])
    assert.equal(retry.level, 'debug')
    assert.equal(retry.target, 'http::call')
    assert.equal(retry.fields.service, 'node-log')
    for (const [key, value] of Object.entries(retry.fields)) {
      assert.equal(typeof value, 'string', key)
      assert.ok(retry.message.includes(` ${key}=${value}`), 'the message ends with the fields')
    }
    assert.ok(Object.isFrozen(retry) && Object.isFrozen(retry.fields))
    await until(published, (r) => r === retry)
    const everything = JSON.stringify([logged, published])
    assert.ok(!everything.includes('s3cret'), everything)

    // Below the level nothing is produced. Records arrive in order, so once the record of
    // a later call is here, any of this one would be too.
    setLogLevel('warn')
    await kit.behave(0, failingOnce)
    await client('node-log-quiet').get('node-log-quiet', '/items')
    setLogLevel('DEBUG')
    await kit.behave(0, failingOnce)
    await client('node-log-again').get('node-log-again', '/items')
    await until(logged, isRetry('node-log-again'))
    assert.deepEqual(logged.filter((r) => r.fields.service === 'node-log-quiet'), [])
    assert.deepEqual(published.filter((r) => r.fields.service === 'node-log-quiet'), [])
  } finally {
    setLogLevel('warn')
    setLogger(null)
    diagnosticsChannel.unsubscribe(courier.LOG_CHANNEL, onPublish)
  }
})

test('records the JavaScript thread has no room for are dropped, counted and told with the next one', async () => {
  const logged = []
  setLogger((record) => logged.push(record))
  setLogLevel('debug')
  const service = 'node-log-flood'
  const n = 1500 // more retry records than the queue to this thread holds (1024)
  const flood = new Client({
    services: {
      [service]: {
        endpoints: [kit.urls[0]],
        breaker: null,
        outlier: null,
        max_concurrency: 4096,
        budget: { ratio: 1.0, min_per_sec: 10, window_ms: 10000 },
        retry: { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 1 },
      },
    },
  })
  // Every attempt fails and each call tries twice: exactly one retry record a call.
  await kit.behave(0, { default: { status: 503 } })
  try {
    const calls = Array.from({ length: n }, () => flood.get(service, '/items'))
    // Keep this thread busy until core has logged every retry: the queue fills, the
    // rest are dropped. Bounded: 60 s.
    const deadline = Date.now() + 60_000
    while (flood.stats().services[service].retries < n && Date.now() < deadline);
    assert.equal(flood.stats().services[service].retries, n)
    await Promise.allSettled(calls)
    // The next record carries the count.
    await kit.behave(0, failingOnce)
    await client('node-log-after-flood').get('node-log-after-flood', '/items')
    await until(logged, isRetry('node-log-after-flood'))
    const notices = logged.filter((r) => r.target === 'telemetry::log' && r.fields.dropped)
    const dropped = notices.reduce((sum, r) => sum + Number(r.fields.dropped), 0)
    assert.ok(dropped > 0, 'some were dropped')
    assert.equal(notices[0].level, 'warn')
    assert.equal(logged.filter(isRetry(service)).length + dropped, n, 'every record delivered or counted')
  } finally {
    setLogLevel('warn')
    setLogger(null)
    flood.close()
  }
})

test('a throwing logger is reported once, and records keep coming', async () => {
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  const published = []
  const onPublish = (record) => published.push(record)
  diagnosticsChannel.subscribe(courier.LOG_CHANNEL, onPublish)
  setLogger(() => { throw new Error('logger broke') })
  setLogLevel('debug')
  try {
    for (const service of ['node-throw-1', 'node-throw-2']) {
      await kit.behave(0, failingOnce)
      await client(service).get(service, '/items')
      await until(published, isRetry(service))
    }
    await delay(10)
    const ours = warnings.filter((w) => w.code === 'COURIER_LOGGER')
    assert.equal(ours.length, 1, 'reported once')
    assert.match(ours[0].message, /logger broke/)
  } finally {
    setLogLevel('warn')
    setLogger(null)
    diagnosticsChannel.unsubscribe(courier.LOG_CHANNEL, onPublish)
    process.off('warning', onWarning)
  }
})

// --- traces: the host's SDK and courier export one connected trace ----------------------

/** Runs a scenario of telemetry-host.js in a process of its own, exporting to the testkit. */
async function host(scenario) {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(__dirname, 'telemetry-host.js'), scenario], {
    timeout: 30000,
    env: {
      ...process.env,
      OTEL_EXPORTER_OTLP_ENDPOINT: kit.otlp.url,
      OTEL_SERVICE_NAME: 'node-test',
      COURIER_TEST_UPSTREAM: kit.urls[0],
    },
  })
  return JSON.parse(stdout)
}

/** Every exported span of `traceId`; each has its parent among them unless it is a root. */
async function trace(traceId, expected) {
  let spans = []
  // Both exporters were flushed before the host exited; allow the receiver a moment.
  for (let i = 0; i < 100 && spans.length < expected; i++) {
    spans = (await kit.otlp.spans()).filter((s) => s.traceId === traceId)
    if (spans.length < expected) await delay(50)
  }
  const ids = new Set(spans.map((s) => s.spanId))
  for (const s of spans) {
    assert.ok(!s.parentSpanId || ids.has(s.parentSpanId), `span ${s.name} has a missing parent: ${JSON.stringify(spans, null, 1)}`)
  }
  return spans
}

const resourceName = (span) => span.resource?.attributes?.find((a) => a.key === 'service.name')?.value?.stringValue
const SPAN_KIND = { CLIENT: 3, PRODUCER: 4, CONSUMER: 5 }

test('a call inside a host span: host span, courier CLIENT span and upstream traceparent form one trace', async () => {
  const { host: ids, sent } = await host('call')
  const spans = await trace(ids.traceId, 2)
  const hostSpan = spans.find((s) => s.name === 'checkout')
  assert.ok(hostSpan, JSON.stringify(spans, null, 1))
  assert.ok(!hostSpan.parentSpanId, 'the host span is the root')
  assert.equal(hostSpan.spanId, ids.spanId)
  const calls = spans.filter((s) => s.kind === SPAN_KIND.CLIENT)
  assert.equal(calls.length, 1, JSON.stringify(spans, null, 1))
  const [call] = calls
  assert.equal(call.name, 'GET')
  assert.equal(call.parentSpanId, ids.spanId, 'courier\'s span is a child of the host span')
  assert.equal(resourceName(call), 'node-test', 'OTEL_SERVICE_NAME names courier\'s resource')
  // What the upstream received names courier's span as its parent.
  const received = (await kit.requests(0)).requests.filter((r) => r.path === '/sampled').map((r) => r.headers.traceparent)
  assert.deepEqual(received, [sent])
  const [, traceId, parentId, flags] = sent.split('-')
  assert.deepEqual([traceId, parentId, flags], [ids.traceId, call.spanId, '01'])
})

test('memory: publish inside a host span → consume: PRODUCER child of the host span, CONSUMER of the producer', async () => {
  const { host: ids, producer, delivered } = await host('messaging')
  const spans = await trace(ids.traceId, 3)
  const hostSpan = spans.find((s) => s.name === 'place-order')
  assert.ok(hostSpan && !hostSpan.parentSpanId, JSON.stringify(spans, null, 1))
  const publish = spans.find((s) => s.kind === SPAN_KIND.PRODUCER)
  assert.ok(publish, JSON.stringify(spans, null, 1))
  assert.equal(publish.name, 'publish orders')
  assert.equal(publish.parentSpanId, ids.spanId)
  assert.equal(publish.spanId, producer, 'the message carries the producer span')
  assert.equal(delivered, producer)
  const consumed = spans.find((s) => s.kind === SPAN_KIND.CONSUMER)
  assert.ok(consumed, `the CONSUMER span is exported once the delivery is settled: ${JSON.stringify(spans, null, 1)}`)
  assert.equal(consumed.name, 'process orders')
  assert.equal(consumed.parentSpanId, producer)
  assert.equal(consumed.links?.[0]?.spanId, producer, 'linked to the producer too')
})

test('an unsampled parent (host context or explicit traceparent): flags 00 on the wire, no courier span exported', async () => {
  const { unsampled, sampled } = await host('unsampled')
  const received = (await kit.requests(0)).requests.filter((r) => r.path === '/unsampled').map((r) => r.headers.traceparent)
  assert.equal(received.length, 2)
  assert.deepEqual(received.map((tp) => tp.split('-')[1]), unsampled)
  for (const tp of received) assert.ok(tp.endsWith('-00'), tp)
  // The sampled call after them was exported, so the exporter ran; nothing of theirs was.
  await trace(sampled, 1)
  const exported = await kit.otlp.spans()
  assert.deepEqual(exported.filter((s) => unsampled.includes(s.traceId)), [])
})

test('memory: request → reply: the request PRODUCER span is the parent of the server CONSUMER span, which ends at the ack', async () => {
  await configureTelemetry({ tracesEndpoint: `${kit.otlp.url}/v1/traces`, serviceName: 'node-rpc' })
  try {
    const bus = await Bus.connect({ urls: [`memory://node-telemetry-rpc-${process.pid}`] })
    await bus.declareQueue('pricing', { quorum: false, deadLetter: false })
    const server = await bus.serve('pricing')
    const serving = (async () => {
      const req = await server.next({ timeoutMs: 5000 })
      await req.reply('42')
      await req.ack()
      return req
    })()
    const reply = await bus.request({ routingKey: 'pricing', body: 'apples', timeoutMs: 5000 })
    assert.equal(reply.body.toString(), '42')
    // The delivery is still referenced: its span ended with the ack, not at GC.
    const req = await serving
    await flushTelemetry()
    const spans = (await kit.otlp.spans()).filter((s) => s.traceId === req.traceContext.traceId)
    const request = spans.find((s) => s.name === 'publish pricing')
    const consumed = spans.find((s) => s.name === 'process pricing')
    assert.ok(request && consumed, JSON.stringify(spans, null, 1))
    assert.equal(request.kind, 4, 'PRODUCER')
    assert.equal(consumed.parentSpanId, request.spanId)
    assert.equal(req.body.toString(), 'apples')
    await server.close()
    await bus.close()
  } finally {
    await configureTelemetry({})
  }
})

test('worker threads: each loaded copy gets the records; one ending leaves the others working', async () => {
  const { Worker } = require('node:worker_threads')
  const logged = []
  setLogger((record) => logged.push(record))
  setLogLevel('debug')
  try {
    // Behaviour set before the worker starts, so its one GET meets the failure.
    await kit.behave(0, failingOnce)
    const worker = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads')
      const { Client, setLogger } = require(workerData.courier)
      const seen = []
      setLogger((r) => seen.push(r))
      const client = new Client({ services: { 'node-worker': { endpoints: [workerData.url] } } })
      ;(async () => {
        await client.get('node-worker', '/items')
        for (let i = 0; i < 200 && !seen.some((r) => r.message.startsWith('retry')); i++) await new Promise((r) => setTimeout(r, 50))
        parentPort.postMessage(seen.filter((r) => r.message.startsWith('retry')).map((r) => r.fields.service))
      })()
    `, { eval: true, workerData: { courier: path.join(__dirname, '..'), url: kit.urls[0] } })
    const fromWorker = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject) })
    assert.deepEqual(fromWorker, ['node-worker'], 'the worker\'s logger got the record')
    await until(logged, isRetry('node-worker'))
    await new Promise((resolve) => { worker.once('exit', resolve); worker.terminate() })
    await kit.behave(0, failingOnce)
    await client('node-after-worker').get('node-after-worker', '/items')
    await until(logged, isRetry('node-after-worker'))
  } finally {
    setLogLevel('warn')
    setLogger(null)
  }
})

// --- metrics ---------------------------------------------------------------------------

test('metrics: Prometheus text in-process, and OTLP at the collector after flushTelemetry', async () => {
  await configureTelemetry({ metricsEndpoint: `${kit.otlp.url}/v1/metrics`, serviceName: 'node-metrics' })
  try {
    await kit.behave(0, failingOnce)
    const resp = await client('node-metrics').get('node-metrics', '/items')
    assert.equal(resp.attempts, 2)
    const text = metricsText()
    assert.match(text, /^# TYPE http_client_request_duration_seconds histogram$/m)
    // The exporter does not order its series: each is found by all its labels.
    const count = (status) => text.split('\n').find((l) => l.startsWith('http_client_request_duration_seconds_count{') &&
      l.includes('courier_service="node-metrics"') && l.includes('http_request_method="GET"') &&
      l.includes(`http_response_status_code="${status}"`))?.split(' ').pop()
    assert.equal(count(503), '1', text)
    assert.equal(count(200), '1', text)
    assert.ok(text.includes('courier_retry_attempts_total{courier_service="node-metrics"} 1'), text)

    await flushTelemetry()
    const metrics = await kit.otlp.metrics()
    const durations = metrics.filter((m) => m.name === 'http.client.request.duration')
    assert.ok(durations.length > 0, JSON.stringify(metrics, null, 1))
    assert.equal(durations[0].unit, 's')
    assert.equal(resourceName(durations[0]), 'node-metrics')
    assert.ok(metrics.some((m) => m.name === 'courier.retry.attempts'))
  } finally {
    await configureTelemetry({})
  }
  assert.doesNotMatch(metricsText(), /node-metrics/, 'configuring again starts the readings from zero')
})

test('flushTelemetry rejects with COURIER_CONNECT when the collector is gone', async () => {
  // A port nobody listens on: one a server of ours had, closed again.
  const net = require('node:net')
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  await configureTelemetry({ metricsEndpoint: `http://127.0.0.1:${port}/v1/metrics` })
  try {
    await client('node-gone').get('node-gone', '/items') // something to export
    await assert.rejects(flushTelemetry(), { code: 'COURIER_CONNECT' })
  } finally {
    await configureTelemetry({})
  }
})

// --- configuration errors ------------------------------------------------------------------

test('bad telemetry options and levels are COURIER_CONFIG naming the option', async () => {
  const cases = [
    [{ tracesEndpoint: 'ftp://x' }, 'traces_endpoint'],
    [{ metricsEndpoint: 'ftp://x' }, 'metrics_endpoint'],
    [{ tracesEndpoint: 'not a url' }, 'traces_endpoint'],
    [{ tracesEndpoint: 5 }, 'traces_endpoint'],
    [{ serviceName: true }, 'service_name'],
    [{ sampler: 'xray' }, 'sampler'],
    [{ sampler: 'traceidratio', samplerArg: 2 }, 'sampler_arg'],
    [{ metrics: 'yes' }, 'metrics'],
    [{ metricsIntervalMs: 0 }, 'metrics_interval_ms'],
    [{ metricsIntervalMs: 1.5 }, 'metrics_interval_ms'],
    [{ metricsIntervalMs: '1000' }, 'metrics_interval_ms'],
  ]
  for (const [options, field] of cases) {
    await assert.rejects(configureTelemetry(options), (e) => e.code === 'COURIER_CONFIG' && e.field === field && e.kind === 'config',
      JSON.stringify(options))
  }
  await assert.rejects(configureTelemetry('fast'), { code: 'COURIER_CONFIG', field: 'options' })
  for (const level of ['loud', '', 5, null]) {
    assert.throws(() => setLogLevel(level), (e) => e.code === 'COURIER_CONFIG' && e.field === 'level', String(level))
  }
  assert.equal(logLevel(), 'warn', 'a refused level changes nothing')
  assert.throws(() => setLogger('console'), { code: 'COURIER_CONFIG', field: 'logger' })
  // A good configuration after the refused ones still applies.
  await configureTelemetry({ sampler: 'parentbased_traceidratio', samplerArg: '0.5', metricsIntervalMs: 1000 })
  await configureTelemetry()
})

test('an unusable OTEL_* variable at load is a warning, not a throw; telemetry stays at its defaults', async () => {
  const script = `
    process.on('warning', (w) => { if (w.name === 'CourierWarning') process.stdout.write(JSON.stringify({ code: w.code, message: w.message })) })
    const courier = require(${JSON.stringify(path.join(__dirname, '..'))})
    if (courier.logLevel() !== 'warn') throw new Error('the level should stay warn')
  `
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
    env: { ...process.env, OTEL_TRACES_SAMPLER: 'xray' },
  })
  const warning = JSON.parse(stdout)
  assert.equal(warning.code, 'COURIER_CONFIG')
  assert.match(warning.message, /OTEL_TRACES_SAMPLER/)
})

test('COURIER_LOG sets the level at load; an unusable one is a warning naming it', async () => {
  const script = `
    process.on('warning', (w) => { if (w.name === 'CourierWarning') process.stdout.write(JSON.stringify({ code: w.code, message: w.message }) + '\\n') })
    const courier = require(${JSON.stringify(path.join(__dirname, '..'))})
    process.stdout.write(JSON.stringify({ level: courier.logLevel() }) + '\\n')
  `
  const run = async (value) => {
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], {
      env: { ...process.env, COURIER_LOG: value },
    })
    return stdout.trim().split('\n').map((line) => JSON.parse(line))
  }
  assert.deepEqual(await run('debug'), [{ level: 'debug' }])
  // The warning event comes a tick after the synchronous level line.
  const [level, warning] = await run('loud')
  assert.equal(warning.code, 'COURIER_CONFIG')
  assert.match(warning.message, /COURIER_LOG/)
  assert.deepEqual(level, { level: 'warn' })
})
