// Type-checked by `tsc --noEmit` (not run): the public types accept what the docs show.
import { Receipt, Trace, TraceContext } from '..'
import { Batch, Bus, BusStats, Client, CourierError, deadlineFromHeaders, Delivery, Request, Response } from '..'
import { configureTelemetry, flushTelemetry, LOG_CHANNEL, logLevel, metricsText, setLogger, setLogLevel } from '..'
import type { BusConfig, ClientConfig, LogLevel, LogRecord, MemoryDedupConfig, RedisDedupConfig, ServiceConfig, TlsConfig } from '..'

async function usage(): Promise<void> {
  const client = new Client({ services: { orders: { endpoints: ['http://127.0.0.1:8081', { url: 'http://h:1', version: 'v2' }] } } })
  const resp: Response = await client.post('orders', '/v1/items', { json: { a: 1 }, idempotencyKey: 'k1', deadlineMs: 500 })
  const status: number = resp.status
  const attempts: number = resp.attempts
  const item = resp.json<{ id: string }>()
  void [status, attempts, item.id]
  const patch: Request = { method: 'PATCH', target: 'orders', path: '/v1/items/1', json: { a: 2 }, idempotencyKey: 'k2' }
  const patched: Response = await client.call(patch)
  const verbs: Response[] = await Promise.all([
    client.head('orders', '/'), client.options('orders', '/'), client.delete('orders', '/v1/items/1'),
    client.put('orders', '/v1/items/1', { body: 'x' }), client.patch('orders', '/v1/items/1', { body: Buffer.from('x') }),
  ])
  void [patched, verbs]
  const hedged = new Client({ services: { search: { endpoints: ['http://h:1', 'http://h:2'], hedge: { delay_ms: 20, percentile: 95 } } } })
  const charge: Response = await hedged.post('search', '/charges', { body: '{}', idempotent: true })
  const key: string | null = charge.idempotencyKey
  const { hedges, hedges_won: won } = hedged.stats().services.search
  void [key, hedges + won]
  hedged.reconfigure({ services: { search: { endpoints: ['http://h:3'], rate_limit: { per_second: 10 }, adaptive_concurrency: {} } } })

  const bus = await Bus.connect({ urls: ['amqp://guest:guest@127.0.0.1:5672/%2f'] })
  await bus.declareQueue('orders', { quorum: true, deadLetter: true, retryDelaysMs: [1000, 5000] })
  const { messageId } = await bus.publish({ routingKey: 'orders', body: Buffer.from('x') })
  const consumer = await bus.consume('orders', { prefetch: 10 })
  for await (const d of consumer) {
    const delivery: Delivery = d
    const id: string | null | undefined = delivery.messageId
    if (id === messageId) await delivery.ack()
    else {
      const next: Receipt = await delivery.forward({ exchange: 'invoices', routingKey: 'invoice.due', body: d.body })
      void next.messageId
    }
  }
  await bus.publish({ routingKey: 'orders', body: 'x', messageId: 'm1', deadlineMs: 1000, delayMs: 500, ttlMs: 60000 })
  const settled: PromiseSettledResult<Receipt>[] = await bus.publishMany([{ routingKey: 'orders', body: 'a' }, { routingKey: 'orders', ttlMs: 5000 }])
  for (const r of settled) if (r.status === 'fulfilled') void r.value.messageId
  const batch: Batch | null = await consumer.nextBatch({ max: 10, timeoutMs: 1000 })
  if (batch !== null) {
    for (const d of batch) {
      const left: number | null = d.remainingMs
      if (left === 0) await d.reject()
    }
    const first: Delivery | undefined = batch.deliveries[0]
    void [first, batch.length]
    await batch.ack()
  }
  const budget: number | null = deadlineFromHeaders({ 'x-courier-deadline-ms': '250' })
  const aborts = new AbortController()
  await bus.publish({ routingKey: 'orders', signal: aborts.signal })
  await bus.publishMany([{ routingKey: 'orders' }], { signal: AbortSignal.timeout(1000) })
  await consumer.next({ timeoutMs: 100, signal: aborts.signal })
  await consumer.nextBatch({ max: 2, timeoutMs: 100, signal: aborts.signal })
  await bus.request({ routingKey: 'pricing', signal: aborts.signal })
  await Bus.connect({ urls: ['memory://typed'] }, { signal: aborts.signal })
  void budget
  const deduped = await bus.consume('orders', { prefetch: 10, dedup: false })
  await deduped.close()

  const memory = await Bus.connect({
    urls: ['memory://typed'],
    reconnect: { base_delay_ms: 100, max_delay_ms: 5000 },
    dedup: { store: 'memory', capacity: 1000, ttl_ms: 60000 },
    publish_deadline_ms: 30000,
  })
  const server = await memory.serve('pricing')
  for await (const req of server) {
    const to: string | null = req.replyTo
    if (to !== null) await req.reply('42', { 'x-a': 'b' })
    await req.reply(Buffer.from('42'))
    await req.nack()
  }
  const reply: Delivery = await memory.request({ routingKey: 'pricing', body: 'apples', timeoutMs: 300, headers: { a: 'b' } })
  await memory.request({ exchange: 'rpc', routingKey: 'pricing', body: Buffer.from('x'), trace: { traceparent: '...' } })
  const text: string = reply.body.toString()
  const stats: BusStats = memory.stats()
  const counts: number[] = [stats.deduplicated, stats.rpc_in_flight, stats.publish_rejected, stats.retried, stats.delayed, stats.expired]
  void [text, counts]
  const parent: TraceContext = TraceContext.parse('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'v=1')
  const ids: [string, string, boolean, string | null] = [parent.traceId, parent.spanId, parent.sampled, parent.tracestate]
  const carrier: Record<string, string> = parent.child().toCarrier()
  const same: boolean = TraceContext.fromCarrier(carrier).equals(TraceContext.newRoot())
  const traces: Trace[] = [parent, carrier]
  const receipt: Receipt = await memory.publish({ routingKey: 'orders', body: 'x', trace: parent })
  const fromReply: TraceContext = reply.traceContext
  await memory.request({ routingKey: 'pricing', trace: receipt.traceContext })
  const called: TraceContext = (await client.get('orders', '/', { trace: parent })).traceContext
  void [ids, same, traces, fromReply, called, receipt.trace.traceparent]
  await memory.close()
  try {
    await client.get('orders')
  } catch (e) {
    const err = e as CourierError
    if (err.code === 'COURIER_TIMEOUT') return
    // Every code is COURIER_ + core's kind upper-cased (a code outside the union fails tsc).
    if (err.code === 'COURIER_BUDGET_EXHAUSTED' && err.kind === 'budget_exhausted') return
  }
}
void usage

// TLS: the same section in a client's config and a bus's.
async function tlsUsage(pem: string): Promise<void> {
  const tls: TlsConfig = { ca_pem: pem, client_cert_pem: pem, client_key_pem: pem, min_version: '1.3', server_name: null }
  const client = new Client({ services: { secure: { endpoints: ['https://127.0.0.1:8443'] } }, tls })
  client.close()
  const bus = await Bus.connect({ urls: ['amqps://127.0.0.1:5671/%2f?auth_mechanism=external'], tls: { ca_pem: pem } })
  await bus.close()
}
void tlsUsage

// Telemetry: the log hook, the level, exporter settings, flush and the Prometheus text.
async function telemetryUsage(): Promise<void> {
  setLogger((record: LogRecord) => {
    const level: 'error' | 'warn' | 'info' | 'debug' | 'trace' = record.level
    const service: string | undefined = record.fields.service
    void [level, record.target, record.message, service]
  })
  setLogger(null)
  setLogLevel('debug')
  const level: LogLevel = logLevel()
  const channel: 'courier:log' = LOG_CHANNEL
  await configureTelemetry({
    tracesEndpoint: 'http://collector:4318/v1/traces', metricsEndpoint: null, serviceName: 'checkout',
    sampler: 'parentbased_traceidratio', samplerArg: 0.25, metrics: true, metricsIntervalMs: 10000,
  })
  await configureTelemetry()
  await flushTelemetry()
  const text: string = metricsText()
  void [level, channel, text]
}
void telemetryUsage

async function scoped(): Promise<void> {
  await using bus = await Bus.connect({ urls: ['memory://scoped'] })
  await using consumer = await bus.consume('orders')
  using client = new Client({ services: { a: { endpoints: ['http://127.0.0.1:1'] } } })
  const d = await consumer.next({ timeoutMs: 100 })
  if (d !== null) {
    const size: number = await d.process(async (x) => x.body.length, { requeue: false })
    const same: string | null = await d.process((x) => x.messageId)
    void [size, same, client]
  }
}
void scoped

// The generated config types (config.d.ts): every section, and a misspelt key refused.
function typedConfig(url: string): [ClientConfig, BusConfig] {
  const client: ClientConfig = {
    services: {
      orders: {
        endpoints: [{ url, version: 'v1', weight: 2 }, url],
        timeout_ms: 2000, deadline_ms: 5000, headers: { 'x-team': 'payments' },
        retry: { max_attempts: 2, base_delay_ms: 10, max_delay_ms: 100, retry_on: ['connect', 'timeout', 503] },
        budget: { ratio: 0.5, min_per_sec: 5, window_ms: 5000 },
        breaker: { window_ms: 5000, min_calls: 10, failure_ratio: 0.6, open_ms: 1000, max_open_ms: 10000, probes: 2 },
        hedge: { max_hedges: 1, delay_ms: 100, percentile: 95 },
        rate_limit: { per_second: 1000, burst: 100, wait: true },
        max_concurrency: 64, balancer: 'round_robin',
        outlier: { consecutive_failures: 3, base_ejection_ms: 1000, max_ejection_ms: 10000, max_ejected_ratio: 0.5 },
        versions: { default: 'v1', split: { v1: 100 } },
      },
      adaptive: { endpoints: [url], adaptive_concurrency: { min_limit: 1, max_limit: 50, initial_limit: 10 }, breaker: null, outlier: null },
      discovered: { discovery: { dns: 'localhost', port: 8080, refresh_ms: 60000, scheme: 'http' } },
    },
    tls: { min_version: '1.3' },
    limits: { max_response_body_bytes: 1_000_000, max_request_body_bytes: 1_000_000, max_response_header_bytes: 32768 },
  }
  const dedup: MemoryDedupConfig | RedisDedupConfig = { store: 'memory', capacity: 1000, ttl_ms: 60000 }
  const bus: BusConfig = {
    urls: ['memory://typed'], prefetch: 10, max_unconfirmed: 32, publish_deadline_ms: 5000, dedup,
    reconnect: { base_delay_ms: 50, max_delay_ms: 500 },
    limits: { max_message_bytes: 1_000_000, max_headers: 16, max_header_value_bytes: 4096 },
  }
  // @ts-expect-error a misspelt key is not a ServiceConfig key
  const typo: ServiceConfig = { endpoints: [url], dedline_ms: 5 }
  void typo
  return [client, bus]
}
void typedConfig
