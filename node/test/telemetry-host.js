'use strict'
// A host application for telemetry.test.js, run as a child process so courier reads the
// OpenTelemetry environment at load: the OpenTelemetry SDK exports the host's spans and
// courier exports its own, both to OTEL_EXPORTER_OTLP_ENDPOINT. `node telemetry-host.js
// SCENARIO` runs one scenario against COURIER_TEST_UPSTREAM, flushes both exporters,
// prints what the test needs to find the spans as one line of JSON, and exits by itself
// (nothing courier holds, such as its log callback, may keep the process alive).
const api = require('@opentelemetry/api')
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks')
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http')
const courier = require('..')

api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
// The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT too (and appends /v1/traces).
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter())] })
api.trace.setGlobalTracerProvider(provider)
const tracer = api.trace.getTracer('host-app')

const inSpan = (name, fn) => tracer.startActiveSpan(name, async (span) => {
  try {
    return await fn(span)
  } finally {
    span.end()
  }
})

const scenarios = {
  /** A host span around one courier call. */
  async call() {
    const client = new courier.Client({ services: { orders: { endpoints: [process.env.COURIER_TEST_UPSTREAM] } } })
    return inSpan('checkout', async (span) => {
      const resp = await client.get('orders', '/sampled')
      return { host: span.spanContext(), sent: resp.traceContext.traceparent }
    })
  },

  /** A host span around a publish; the delivery consumed and acked outside it. */
  async messaging() {
    const bus = await courier.Bus.connect({ urls: [`memory://node-telemetry-${process.pid}`] })
    await bus.declareQueue('orders', { quorum: false, deadLetter: false })
    const [host, receipt] = await inSpan('place-order', async (span) => [
      span.spanContext(),
      await bus.publish({ routingKey: 'orders', body: 'x' }),
    ])
    const consumer = await bus.consume('orders')
    const delivery = await consumer.next({ timeoutMs: 5000 })
    await delivery.ack()
    await consumer.close()
    await bus.close()
    return { host, producer: receipt.traceContext.spanId, delivered: delivery.traceContext.spanId }
  },

  /** Calls whose parent is not sampled: an unsampled host context, then an explicit traceparent. */
  async unsampled() {
    const client = new courier.Client({ services: { orders: { endpoints: [process.env.COURIER_TEST_UPSTREAM] } } })
    const remote = api.trace.wrapSpanContext({
      traceId: '5bf92f3577b34da6a3ce929d0e0e4736', spanId: '10f067aa0ba902b7', traceFlags: api.TraceFlags.NONE,
    })
    const fromHost = await api.context.with(api.trace.setSpan(api.context.active(), remote),
      () => client.get('orders', '/unsampled'))
    const explicit = await client.get('orders', '/unsampled', {
      trace: { traceparent: '00-6bf92f3577b34da6a3ce929d0e0e4736-20f067aa0ba902b7-00' },
    })
    // A sampled call after them, so the test knows courier's exporter was working.
    const sampled = await client.get('orders', '/sampled')
    return {
      unsampled: [fromHost.traceContext.traceId, explicit.traceContext.traceId],
      sampled: sampled.traceContext.traceId,
    }
  },
}

;(async () => {
  const out = await scenarios[process.argv[2]]()
  await provider.forceFlush()
  await courier.flushTelemetry()
  process.stdout.write(JSON.stringify(out) + '\n')
})().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
