/// <reference types="node" />

import type { BusConfig, ClientConfig } from './config'

// The config types, generated from core's config schema (scripts/config-types.py).
export * from './config'

/** An error from courier: `code` is stable across versions and languages. */
export interface CourierError extends Error {
  code:
    | 'COURIER_CONFIG' | 'COURIER_TIMEOUT' | 'COURIER_CIRCUIT_OPEN' | 'COURIER_BUDGET_EXHAUSTED' | 'COURIER_OVERLOADED'
    | 'COURIER_RATE_LIMITED' | 'COURIER_NO_ENDPOINT' | 'COURIER_CONNECT' | 'COURIER_TLS' | 'COURIER_UNROUTABLE' | 'COURIER_PUBLISH_REJECTED'
    | 'COURIER_BROKER' | 'COURIER_LIMIT_EXCEEDED' | 'COURIER_CLOSED' | 'COURIER_INTERNAL'
  /** The snake_case kind shared with every other language (`circuit_open`). */
  kind: string
  // The fields of core's error table (the same in every language, here in camelCase);
  // each kind carries the ones listed in docs/api.md.
  /** COURIER_CONFIG: the path of the invalid value (`services.orders.endpoints[0].url`) and why. */
  field?: string
  /** COURIER_CONFIG, COURIER_NO_ENDPOINT, COURIER_CONNECT, COURIER_TLS: why it failed. */
  reason?: string
  /** The service (COURIER_CIRCUIT_OPEN, COURIER_BUDGET_EXHAUSTED, COURIER_OVERLOADED, COURIER_RATE_LIMITED, COURIER_NO_ENDPOINT). */
  service?: string
  /** What was attempted (COURIER_TIMEOUT, COURIER_CONNECT, COURIER_BROKER). */
  operation?: string
  /** COURIER_TIMEOUT: the limit that passed. */
  afterMs?: number
  /** COURIER_CIRCUIT_OPEN: when the breaker lets a probe through; COURIER_RATE_LIMITED: when a token would have been there. */
  retryAfterMs?: number
  /** COURIER_BUDGET_EXHAUSTED: attempts made; `cause` is the failure that was not retried. */
  attempts?: number
  cause?: CourierError
  /** COURIER_OVERLOADED: the service's max_concurrency (a number); COURIER_LIMIT_EXCEEDED: the config field of the limit (`limits.max_response_body_bytes`). */
  limit?: string | number
  /** COURIER_LIMIT_EXCEEDED: the limit's value in bytes, and what was too large. */
  max?: number
  what?: string
  /** COURIER_CONNECT: the peer, credentials redacted. */
  target?: string
  /** COURIER_UNROUTABLE, COURIER_PUBLISH_REJECTED: the message. */
  messageId?: string
  exchange?: string
  routingKey?: string
  /** COURIER_UNROUTABLE, COURIER_BROKER: the broker's reply. */
  replyText?: string
  /** COURIER_BROKER: the AMQP reply code (404, 406...). */
  replyCode?: number
}

export interface EndpointStats {
  url: string
  version: string | null
  weight: number
  requests: number
  failures: number
  ewma_ms: number
  in_flight: number
  ejected: boolean
  times_ejected: number
}

export interface ServiceStats {
  requests: number
  attempts: number
  retries: number
  budget_denied: number
  overloaded: number
  circuit_rejected: number
  /** Hedged attempts sent (each also counts in `attempts`). */
  hedges: number
  /** Calls whose answer came from a hedged attempt. */
  hedges_won: number
  /** Calls refused by the rate limit (COURIER_RATE_LIMITED). */
  rate_limited: number
  /** The rate limit's current calls per second (lower while it recovers from a 429); null without one. */
  rate_per_sec: number | null
  in_flight: number
  /** The calls that may be in flight: max_concurrency, or the adaptive limit now. */
  concurrency_limit: number
  breaker_state: 'closed' | 'open' | 'half_open' | 'disabled'
  breaker_opened: number
  breaker_half_opened: number
  breaker_closed: number
  endpoints: EndpointStats[]
}

/** Counters since the bus connected. */
export interface BusStats {
  published: number
  confirmed: number
  resent: number
  returned: number
  publish_rejected: number
  republished: number
  delivered: number
  acked: number
  nacked: number
  rejected: number
  redelivered: number
  /** Duplicates acked and skipped without reaching the application. */
  deduplicated: number
  /** Nacked deliveries sent to a delay queue to come back later (`retryDelaysMs`). */
  retried: number
  /** Publishes confirmed into a delay queue (`delayMs`), retries not included. */
  delayed: number
  /** Messages dead-lettered unprocessed because their deadline (`ttlMs`, a request's timeout) had passed. */
  expired: number
  /** Requests awaiting their reply now. */
  rpc_in_flight: number
  reconnects: number
}

/**
 * A position in a distributed trace (W3C trace context: trace id, span id, flags,
 * `tracestate`, `baggage`), parsed and written by courier's core.
 */
export declare class TraceContext {
  private constructor()
  /** A new trace: random ids, sampled. */
  static newRoot(): TraceContext
  /** @throws {CourierError} COURIER_CONFIG with `field` `traceparent` when it is invalid. An invalid tracestate is dropped. */
  static parse(traceparent: string, tracestate?: string | null): TraceContext
  /** Extracts from a carrier (keys compared case-insensitively); a missing or invalid traceparent starts a new trace. */
  static fromCarrier(carrier: Record<string, string>): TraceContext
  /** The same trace with a new span id. */
  child(): TraceContext
  /** 32 lowercase hex digits. */
  readonly traceId: string
  /** 16 lowercase hex digits. */
  readonly spanId: string
  readonly sampled: boolean
  readonly traceparent: string
  /** The vendors' `tracestate`, or null when empty. */
  readonly tracestate: string | null
  /** `traceparent`, and `tracestate` / `baggage` when non-empty. */
  toCarrier(): Record<string, string>
  /** Same ids, flags, tracestate and baggage. */
  equals(other: TraceContext): boolean
  /** The traceparent. */
  toString(): string
}

/**
 * The parent of a call, publish or request: a `TraceContext` or a W3C carrier object
 * (`traceparent`, `tracestate`, `baggage`). Without one, courier continues the active
 * OpenTelemetry span when `@opentelemetry/api` is installed and a span is active, and
 * starts a new trace otherwise.
 */
export type Trace = TraceContext | Record<string, string>

export type Body = string | Buffer | ArrayBufferView | ArrayBuffer
export type Pairs = Record<string, string | number> | Map<string, string> | Array<[string, string]>

export interface CallOptions {
  headers?: Pairs
  query?: Pairs
  body?: Body
  /** Serialised with JSON.stringify; sets content-type when absent. */
  json?: unknown
  deadlineMs?: number
  timeoutMs?: number
  /** Sent as Idempotency-Key on every attempt; makes POST and PATCH retryable. */
  idempotencyKey?: string
  /**
   * Without `idempotencyKey`: courier makes one key (a UUIDv7) for the call and sends it on
   * every attempt and hedge, so a POST or PATCH is retried and hedged safely.
   */
  idempotent?: boolean
  /** Route only to endpoints of this version. */
  version?: string
  /** Take the rate limit's token from this key's bucket (a tenant, a user); the service needs a `rate_limit`. */
  rateKey?: string
  /** Aborting rejects the call with the signal's reason and cancels the request. */
  signal?: AbortSignal
  /** The parent; every attempt sends a child of it. See `Trace` for the default. */
  trace?: Trace
}

/**
 * One call for `Client.call`: core's `Request`, the same name as in Rust, Kotlin and
 * Swift. Inside a module that imports it, it shadows the global fetch `Request`, as
 * `Response` does.
 */
export interface Request extends CallOptions {
  method: string
  /** A service name from the config, or an absolute http(s) URL. */
  target: string
  path?: string
}

export declare class Response {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: Buffer
  /** Attempts made; 1 when the first attempt answered. */
  readonly attempts: number
  /** Base URL of the endpoint that answered. */
  readonly endpoint: string
  /** The Idempotency-Key every attempt sent (the caller's or courier's); null when none. */
  readonly idempotencyKey: string | null
  /** The trace carrier the answered attempt sent. */
  readonly trace: Record<string, string>
  /** The same context as a TraceContext. */
  readonly traceContext: TraceContext
  text(): string
  json<T = unknown>(): T
}

export declare class Client {
  /** @throws {CourierError} COURIER_CONFIG naming the field path. */
  constructor(config: ClientConfig)
  static fromFile(path: string): Client
  call(request: Request): Promise<Response>
  get(target: string, path?: string, opts?: CallOptions): Promise<Response>
  head(target: string, path?: string, opts?: CallOptions): Promise<Response>
  options(target: string, path?: string, opts?: CallOptions): Promise<Response>
  delete(target: string, path?: string, opts?: CallOptions): Promise<Response>
  post(target: string, path?: string, opts?: CallOptions): Promise<Response>
  put(target: string, path?: string, opts?: CallOptions): Promise<Response>
  patch(target: string, path?: string, opts?: CallOptions): Promise<Response>
  /**
   * Replaces the configuration atomically: later calls use `config`, calls in flight finish under the
   * old one, and what did not change (services, endpoints, counters) is kept.
   * @throws {CourierError} COURIER_CONFIG naming the field path; the client keeps its configuration.
   */
  reconfigure(config: ClientConfig): void
  stats(): { services: Record<string, ServiceStats> }
  close(): void
  /** `using client = new Client(...)` closes it at the end of the scope. */
  [Symbol.dispose](): void
  [Symbol.asyncDispose](): Promise<void>
}

export declare class Delivery {
  readonly body: Buffer
  readonly headers: Record<string, string>
  readonly messageId: string | null
  readonly correlationId: string | null
  /** Where the reply goes; null unless this is a request from `serve()`. */
  readonly replyTo: string | null
  readonly exchange: string
  readonly routingKey: string
  readonly redelivered: boolean
  readonly deliveryCount: number | null
  /**
   * Milliseconds left until the message's deadline (its publisher's `ttlMs`, a request's
   * timeout), 0 once passed; null without one. Pass it on as the deadline of the calls
   * and publishes made for this message.
   */
  readonly remainingMs: number | null
  /** Whether it was acked, nacked, rejected or forwarded. */
  readonly isSettled: boolean
  /** The trace context the message carried, as a carrier object. */
  readonly trace: Record<string, string>
  /** The same context as a TraceContext. */
  readonly traceContext: TraceContext
  /** Records the id in the dedup store. */
  ack(): Promise<void>
  nack(requeue?: boolean): Promise<void>
  /** Dead-letters the message. */
  reject(): Promise<void>
  /** Answers a request; rejects with COURIER_CONFIG when this delivery is not one. */
  reply(body?: Body, headers?: Record<string, string>): Promise<void>
  /**
   * Hands the message on to the next workflow step: publishes `msg` under a message id
   * derived from this delivery's id and the destination (a redelivered copy forwards the
   * same id, which the next step's dedup skips), then acks this delivery once the broker
   * confirmed. Without `trace`: the active OpenTelemetry span, else this delivery's trace.
   */
  forward(msg: Omit<PublishMessage, 'messageId'>): Promise<Receipt>
  /**
   * Runs `fn(delivery)` and settles the delivery after it, unless `fn` settled it already:
   * acked when `fn` resolves; when it throws, nacked (`requeue`, by default true; on a
   * queue with `retryDelaysMs`, later) and the error rethrown. Resolves with `fn`'s result.
   */
  process<T>(fn: (delivery: Delivery) => T | Promise<T>, opts?: { requeue?: boolean }): Promise<T>
}

/**
 * Deliveries from `Consumer.nextBatch`, in delivery order. Settle any on its own; `ack`,
 * `nack` and `reject` then settle all the others at once (rejecting with the first
 * failure, having settled the rest).
 */
export declare class Batch implements Iterable<Delivery> {
  readonly deliveries: readonly Delivery[]
  readonly length: number
  ack(): Promise<void>
  nack(requeue?: boolean): Promise<void>
  reject(): Promise<void>
  [Symbol.iterator](): Iterator<Delivery>
}

export declare class Consumer implements AsyncIterable<Delivery> {
  next(opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Delivery | null>
  /**
   * Up to `max` deliveries (1..=prefetch): resolves once `max` came or `timeoutMs` passed
   * (fewer, possibly none), or null once the consumer is closed.
   */
  nextBatch(opts: { max: number; timeoutMs: number; signal?: AbortSignal }): Promise<Batch | null>
  close(): Promise<void>
  /** `await using consumer = ...` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void>
  /** Leaving a `for await` loop early closes the consumer; settle deliveries inside the loop. */
  [Symbol.asyncIterator](): AsyncIterator<Delivery>
}

export interface QueueOptions {
  quorum?: boolean
  /** Default 5 on quorum queues. */
  deliveryLimit?: number
  /** Create `<name>.dlq` for rejected messages. Default true. */
  deadLetter?: boolean
  ttlMs?: number
  /**
   * Delayed redelivery: `nack(true)` brings the message back after each delay in turn
   * (`x-courier-retries` counts them), then dead-letters it. Needs `deadLetter`.
   */
  retryDelaysMs?: number[]
  /** Aborts the wait for the broker's answer. */
  signal?: AbortSignal
}

/** For the topology calls that take nothing else. */
export interface SignalOptions {
  /** Aborts the wait for the broker's answer. */
  signal?: AbortSignal
}

export interface PublishMessage {
  exchange?: string
  routingKey: string
  body?: Body
  headers?: Record<string, string>
  messageId?: string
  correlationId?: string
  persistent?: boolean
  /** The parent; the message carries a child of it. See `Trace` for the default. */
  trace?: Trace
  /** How long the publish may wait in all; the config's `publish_deadline_ms` by default. */
  deadlineMs?: number
  /** Deliver no earlier than this many milliseconds from now (through a delay queue). */
  delayMs?: number
  /**
   * How long the message stays worth processing, from now: a consumer dead-letters it
   * unprocessed after that (`Delivery.remainingMs` is what is left). With `delayMs`, longer than it.
   */
  ttlMs?: number
  /**
   * Aborts the wait: the Promise rejects with the signal's reason at once. A message
   * already written may still be routed; only its confirm is no longer awaited.
   */
  signal?: AbortSignal
}

export interface ConsumeOptions {
  /** Unacknowledged deliveries at once; the config's `prefetch` by default. */
  prefetch?: number
  /** Skip message ids already acked within the dedup window. Default true. */
  dedup?: boolean
  /** Aborts the wait for the subscription. */
  signal?: AbortSignal
}

export interface RequestMessage {
  /** Default `''`, which routes by queue name. */
  exchange?: string
  routingKey: string
  body?: Body
  /** How long to wait for the reply. Default 5000. */
  timeoutMs?: number
  headers?: Record<string, string>
  /** The parent; the request carries a child of it. See `Trace` for the default. */
  trace?: Trace
  /** Aborts the request: the Promise rejects with the signal's reason and a late reply is discarded. */
  signal?: AbortSignal
}

/** A confirmed publish. */
export interface Receipt {
  messageId: string
  /** The context the message carries (a child of the parent, or a new trace), as a carrier. */
  trace: Record<string, string>
  /** The same context as a TraceContext. */
  traceContext: TraceContext
}

export declare class Bus {
  static connect(config: BusConfig, opts?: { signal?: AbortSignal }): Promise<Bus>
  declareQueue(name: string, opts?: QueueOptions): Promise<void>
  declareExchange(name: string, kind?: 'direct' | 'fanout' | 'topic' | 'headers', opts?: SignalOptions): Promise<void>
  bind(queue: string, exchange: string, routingKey: string, opts?: SignalOptions): Promise<void>
  publish(msg: PublishMessage): Promise<Receipt>
  /**
   * Publishes up to 1,000 messages at once and waits for all their confirms together;
   * resolves with one `Promise.allSettled` entry per message, at its index (a rejected
   * one holds the error `publish` would reject with). Rejects only for the batch itself
   * (empty, too long, a closed bus).
   */
  publishMany(msgs: readonly PublishMessage[], opts?: { signal?: AbortSignal }): Promise<PromiseSettledResult<Receipt>[]>
  consume(queue: string, opts?: ConsumeOptions): Promise<Consumer>
  /** A consumer of RPC requests: each delivery's `reply()` answers its caller. */
  serve(queue: string, opts?: SignalOptions): Promise<Consumer>
  /** Resolves to the reply; rejects with COURIER_TIMEOUT or COURIER_UNROUTABLE. */
  request(req: RequestMessage): Promise<Delivery>
  stats(): BusStats
  close(): Promise<void>
  /** `await using bus = await Bus.connect(...)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void>
}

/**
 * The caller's remaining budget in milliseconds from an incoming HTTP request's headers
 * (`x-courier-deadline-ms`, which courier clients send; any case), for a server to pass
 * on as the deadline of its own calls and publishes; null when the caller sent none.
 * Throws COURIER_CONFIG naming the header when its value is not whole milliseconds.
 */
export declare function deadlineFromHeaders(headers: Record<string, string> | Map<string, string>): number | null

// --- telemetry ---------------------------------------------------------------------------

/** The levels core records are produced at; `'off'` produces none. */
export type LogLevel = 'off' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

/**
 * One core log record, as `setLogger` callbacks and `courier:log` subscribers get it
 * (frozen; the same object for both).
 */
export interface LogRecord {
  readonly level: Exclude<LogLevel, 'off'>
  /** The core module that logged it (`http::call`, `messaging::amqp::link`): append it to a `courier` logger's name. */
  readonly target: string
  /** The message followed by its fields as ` key=value`; URLs have their credentials redacted. */
  readonly message: string
  /** The fields alone, in the order logged (`service`, `attempt`, `error`, ...). */
  readonly fields: Readonly<Record<string, string>>
}

/** The `node:diagnostics_channel` name every record is published on while it has subscribers: `'courier:log'`. */
export declare const LOG_CHANNEL: 'courier:log'

/**
 * Sends every core log record of the process to `fn` on the JavaScript thread; `null`
 * stops. Records are queued, never waited for: when the event loop falls behind they are
 * dropped, and the next one delivered (a `warn` from `telemetry::log`) says how many were.
 * A throwing logger is reported once with `process.emitWarning`.
 * @throws {CourierError} COURIER_CONFIG on `logger` when `fn` is not a function or null.
 */
export declare function setLogger(fn: ((record: LogRecord) => void) | null): void

/**
 * Sets the level records are produced at, for every client and bus of the process
 * (initially `COURIER_LOG`, else `'warn'`); below it, core does not even format them.
 * Case-insensitive; `'warning'` and `'none'` are accepted too.
 * @throws {CourierError} COURIER_CONFIG on `level` for any other word.
 */
export declare function setLogLevel(level: LogLevel | (string & {})): void
export declare function logLevel(): LogLevel

/**
 * Telemetry settings. At load, courier reads the OpenTelemetry environment
 * (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, ...);
 * `configureTelemetry` replaces all of it, omitted options taking these defaults.
 */
export interface TelemetryOptions {
  /** The full OTLP/HTTP traces URL (`http://collector:4318/v1/traces`); default none: spans are not exported. */
  tracesEndpoint?: string | null
  /** The full OTLP/HTTP metrics URL (`.../v1/metrics`); default none (metrics stay readable with `metricsText()`). */
  metricsEndpoint?: string | null
  /** `service.name` of the exported resource; default `OTEL_SERVICE_NAME`, else `unknown_service`. */
  serviceName?: string | null
  /** How the traces courier starts are sampled, named as `OTEL_TRACES_SAMPLER`: `'always_on'` (default), `'always_off'`, `'traceidratio'` (and their `parentbased_` forms: a parent's flag is always kept). */
  sampler?: 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio' | null
  /** The ratio for `'traceidratio'`, 0..1 (default 1). */
  samplerArg?: number | string | null
  /** Whether metrics are recorded at all. Default true. */
  metrics?: boolean | null
  /** How often metrics are exported. Default 60000. */
  metricsIntervalMs?: number | null
}

/**
 * Replaces the telemetry settings. Resolves once applied (an exporter replaced sends
 * what it holds first, off the JavaScript thread).
 * @throws {CourierError} (rejects) COURIER_CONFIG naming the option: `traces_endpoint`, `metrics_endpoint`, `sampler`, `sampler_arg`, `metrics_interval_ms`...
 */
export declare function configureTelemetry(options?: TelemetryOptions): Promise<void>

/**
 * Exports the finished spans and the current metric readings now, off the JavaScript
 * thread. courier also flushes once at `beforeExit` and on `Bus.close()`;
 * `process.exit()` skips `beforeExit`, so await this first.
 * @throws {CourierError} (rejects) COURIER_CONNECT when a collector cannot be reached.
 */
export declare function flushTelemetry(): Promise<void>

/** The metric readings in the Prometheus text format (0.0.4), for an application's own `/metrics`; empty when metrics are off. */
export declare function metricsText(): string
