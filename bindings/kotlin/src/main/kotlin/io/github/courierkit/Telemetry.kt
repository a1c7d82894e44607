/**
 * courier's telemetry on the JVM: its log records in the application's logger, the log
 * level, OTLP export of its spans and metrics, and the Prometheus text.
 *
 * Logging needs nothing from the application: the first `Client(...)`,
 * `Client.fromFile(...)` or `Bus.connect(...)` (or any [Courier] function) installs
 * [CourierLogging]'s default sink, which forwards to SLF4J when `org.slf4j:slf4j-api` is
 * on the classpath and to `java.util.logging` otherwise, on loggers named
 * `courier.<module>` (`courier.http.call`, `courier.messaging.amqp.link`). The level
 * records are produced at is `COURIER_LOG` (default `warn`) until [Courier.setLogLevel]
 * changes it; the host logger's own configuration filters further.
 *
 * Export follows the OpenTelemetry environment variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
 * `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`...) until [Courier.configureTelemetry]
 * replaces them. A JVM shutdown hook, registered on first use, flushes once at exit.
 */
package io.github.courierkit

import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.LogLevel
import io.github.courierkit.ffi.LogRecord
import io.github.courierkit.ffi.LogSink
import io.github.courierkit.ffi.TelemetrySettings
import io.github.courierkit.ffi.setLogSinkNative
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import org.slf4j.LoggerFactory
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicBoolean
import java.util.logging.Level
import java.util.logging.Logger
import kotlin.time.Duration
import io.github.courierkit.ffi.configureTelemetry as configureTelemetryNative
import io.github.courierkit.ffi.flushTelemetry as flushTelemetryNative
import io.github.courierkit.ffi.logLevel as logLevelNative
import io.github.courierkit.ffi.metricsText as metricsTextNative
import io.github.courierkit.ffi.setLogLevel as setLogLevelNative

/**
 * Process-wide telemetry settings: the log level and sink, OTLP export, flush, and the
 * Prometheus text. Every function installs the default log sink first ([CourierLogging]).
 */
object Courier {
    /**
     * Sets the level courier produces log records at, for every client and bus of the
     * process. Records below it cost nothing: they are skipped before being formatted.
     */
    fun setLogLevel(level: LogLevel) {
        CourierLogging.install()
        setLogLevelNative(level)
    }

    /** The level courier produces log records at (`COURIER_LOG`, else [LogLevel.WARN]). */
    fun logLevel(): LogLevel {
        CourierLogging.install()
        return logLevelNative()
    }

    /**
     * Sends courier's log records to [sink] instead of the default ([CourierLogging]);
     * null drops them. Called on courier's log thread, one record at a time; a record the
     * sink throws on is lost, nothing else.
     */
    fun setLogSink(sink: LogSink?) = CourierLogging.use(sink)

    /** [setLogSink] with a function. */
    fun setLogSink(sink: (LogRecord) -> Unit) = CourierLogging.use(FunctionSink(sink))

    /**
     * Replaces the telemetry settings of the whole process (the OpenTelemetry environment
     * variables' until then): where spans and metrics are exported over OTLP/HTTP, the
     * resource's `service.name`, the sampler of the traces courier starts, whether metrics
     * are recorded and how often they are exported. Metric readings restart from zero.
     *
     * @param tracesEndpoint the full traces URL (`http://collector:4318/v1/traces`); null:
     *   spans are not exported.
     * @param metricsEndpoint the full metrics URL (`.../v1/metrics`); null: metrics are not
     *   exported (still readable with [metricsText]).
     * @param serviceName `service.name`; null: `OTEL_SERVICE_NAME`, else `unknown_service`.
     * @param sampler as `OTEL_TRACES_SAMPLER`: `always_on` (null), `always_off`,
     *   `traceidratio` or their `parentbased_` forms.
     * @param samplerArg as `OTEL_TRACES_SAMPLER_ARG`: the ratio for `traceidratio`.
     * @param metrics whether metrics are recorded at all.
     * @param metricsInterval the export interval; null: 60 s.
     * @throws CourierException.Config naming the parameter (`traces_endpoint`,
     *   `metrics_endpoint`, `sampler`, `sampler_arg`, `metrics_interval_ms`) whose value is
     *   unusable; the settings in force stay.
     */
    fun configureTelemetry(
        tracesEndpoint: String? = null,
        metricsEndpoint: String? = null,
        serviceName: String? = null,
        sampler: String? = null,
        samplerArg: String? = null,
        metrics: Boolean = true,
        metricsInterval: Duration? = null,
    ) {
        CourierLogging.install()
        configureTelemetryNative(
            TelemetrySettings(
                tracesEndpoint = tracesEndpoint,
                metricsEndpoint = metricsEndpoint,
                serviceName = serviceName,
                sampler = sampler,
                samplerArg = samplerArg,
                metrics = metrics,
                metricsInterval = metricsInterval,
            ),
        )
    }

    /**
     * Exports the finished spans and the current metric readings now, suspending until
     * the collectors answered (the export runs on courier's threads, not the caller's).
     * `Bus.shutdown()` flushes too, and so does the shutdown hook at exit.
     *
     * @throws CourierException.Connect when a collector cannot be reached or refuses.
     */
    suspend fun flushTelemetry() {
        CourierLogging.install()
        flushTelemetryNative()
    }

    /**
     * courier's metric readings in the Prometheus text format
     * (`http_client_request_duration_seconds_count{...} 3`), for a `/metrics` endpoint of
     * the application's own; empty while metrics are off.
     */
    fun metricsText(): String {
        CourierLogging.install()
        return metricsTextNative()
    }
}

/**
 * Where courier's log records go on the JVM.
 *
 * Unless the application chose a sink ([Courier.setLogSink] or [use]), the first client,
 * bus or [Courier] call installs [defaultSink]: [Slf4jLogSink] when SLF4J's API is on the
 * classpath (`org.slf4j:slf4j-api` is an optional dependency of courier, 1.7 or 2.x), else
 * [JulLogSink]. Both log on `courier.` + the record's module (`courier.http.call`) and
 * check that the level is enabled before doing anything else.
 *
 * The first install also registers a JVM shutdown hook (thread `courier-telemetry-flush`)
 * that flushes exported spans and metrics once at exit, waiting at most 10 s.
 *
 * Sinks are called on courier's log thread (`courier-log`, native), one record at a time,
 * never on a core worker. JNA attaches that thread to the JVM for each record and detaches
 * it afterwards: kept attached (`Native.detach(false)`), it would be a non-daemon thread
 * that the JVM waits for at exit, forever.
 */
object CourierLogging {
    private val lock = Any()

    @Volatile
    private var chosen = false

    /** Whether SLF4J's API is on the classpath; looked up once, by name, without loading it. */
    val slf4jAvailable: Boolean = try {
        Class.forName("org.slf4j.LoggerFactory", false, CourierLogging::class.java.classLoader)
        true
    } catch (e: ClassNotFoundException) {
        false
    } catch (e: LinkageError) {
        false
    }

    /** The sink installed when the application chose none: SLF4J's, else java.util.logging's. */
    fun defaultSink(): LogSink = if (slf4jAvailable) Slf4jLogSink() else JulLogSink()

    /** The logger name for a record's module: `http::call` is `courier.http.call`. */
    fun loggerName(target: String): String =
        if (target.isEmpty()) "courier" else "courier." + target.replace("::", ".")

    /** Installs [defaultSink] unless a sink was chosen already; does nothing after the first call. */
    fun install() {
        if (chosen) return
        synchronized(lock) {
            if (!chosen) use(defaultSink())
        }
    }

    /**
     * Sends records to [sink] from now on (null: nowhere); the default is never installed
     * over it. An exception the sink throws loses that record only.
     */
    fun use(sink: LogSink?) {
        synchronized(lock) {
            chosen = true
            setLogSinkNative(sink?.let(::Guarded))
        }
        FlushAtExit.register()
    }

    /**
     * The generated converters of `Client(configJson)`, `Client.fromFile(path)` and
     * `Bus.connect(configJson)` call this (uniffi.toml), so the default sink is in place
     * before the first client or bus logs anything.
     */
    internal fun installed(value: String): String {
        install()
        return value
    }
}

/** Forwards records to SLF4J: ERROR, WARN, INFO, DEBUG and TRACE map one to one. */
class Slf4jLogSink : LogSink {
    private val loggers = ConcurrentHashMap<String, org.slf4j.Logger>()

    override fun log(record: LogRecord) {
        val logger = loggers.computeIfAbsent(CourierLogging.loggerName(record.target)) {
            LoggerFactory.getLogger(it)
        }
        // The one-argument methods take the message as it is: no `{}` substitution.
        val message = record.message
        when (record.level) {
            LogLevel.ERROR -> if (logger.isErrorEnabled) logger.error(message)
            LogLevel.WARN -> if (logger.isWarnEnabled) logger.warn(message)
            LogLevel.INFO -> if (logger.isInfoEnabled) logger.info(message)
            LogLevel.DEBUG -> if (logger.isDebugEnabled) logger.debug(message)
            LogLevel.TRACE -> if (logger.isTraceEnabled) logger.trace(message)
            LogLevel.OFF -> {}
        }
    }
}

/**
 * Forwards records to `java.util.logging`: ERROR is SEVERE, WARN is WARNING, INFO is
 * INFO, DEBUG is FINE and TRACE is FINER. The record's source is its logger's name, so
 * formatters do not walk the stack for one.
 */
class JulLogSink : LogSink {
    private val loggers = ConcurrentHashMap<String, Logger>()

    override fun log(record: LogRecord) {
        val level = julLevel(record.level) ?: return
        val name = CourierLogging.loggerName(record.target)
        // Held here, so a level configured on it in code is not lost to garbage collection.
        val logger = loggers.computeIfAbsent(name) { Logger.getLogger(it) }
        if (!logger.isLoggable(level)) return
        val entry = java.util.logging.LogRecord(level, record.message)
        entry.loggerName = name
        entry.sourceClassName = name
        entry.sourceMethodName = null
        logger.log(entry)
    }

    companion object {
        /** The java.util.logging level of a courier level; null for [LogLevel.OFF]. */
        fun julLevel(level: LogLevel): Level? = when (level) {
            LogLevel.ERROR -> Level.SEVERE
            LogLevel.WARN -> Level.WARNING
            LogLevel.INFO -> Level.INFO
            LogLevel.DEBUG -> Level.FINE
            LogLevel.TRACE -> Level.FINER
            LogLevel.OFF -> null
        }
    }
}

private class FunctionSink(private val block: (LogRecord) -> Unit) : LogSink {
    override fun log(record: LogRecord) = block(record)
}

/** Keeps a sink's exception on this side: the record is lost, courier's log thread goes on. */
private class Guarded(private val sink: LogSink) : LogSink {
    override fun log(record: LogRecord) {
        try {
            sink.log(record)
        } catch (e: Exception) {
            // A failing logger has nowhere to report to; the record is dropped.
        }
    }
}

/** The shutdown hook that flushes exported telemetry once at exit. */
private object FlushAtExit {
    private val registered = AtomicBoolean(false)

    fun register() {
        if (!registered.compareAndSet(false, true)) return
        try {
            Runtime.getRuntime().addShutdownHook(Thread(::flush, "courier-telemetry-flush"))
        } catch (e: IllegalStateException) {
            // Already shutting down.
        } catch (e: SecurityException) {
            // Not allowed here; flush with Courier.flushTelemetry() instead.
        }
    }

    private fun flush() {
        try {
            runBlocking { withTimeoutOrNull(10_000) { flushTelemetryNative() } }
        } catch (e: CourierException) {
            // The collector is gone; nothing to tell at exit.
        }
    }
}
