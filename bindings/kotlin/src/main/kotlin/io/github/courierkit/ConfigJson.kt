/**
 * How the typed configuration (Config.kt, generated from core's config schema) becomes
 * the JSON core reads, and the constructors that take it.
 *
 * A small writer rather than a serialization library: the config types are plain data
 * classes that Java can build too, and their JSON is a few objects deep; kotlinx
 * serialization would need a compiler plugin in every user's build, Jackson or Gson a
 * runtime dependency and reflection.
 */
package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client

/** A config object: written as a JSON object, with only the fields that are set. */
interface ConfigObject {
    /** Writes this object's fields. */
    fun writeJson(out: JsonObjectWriter)

    /** The JSON core reads (the same as the String configs). */
    fun toJson(): String = StringBuilder().also { JsonObjectWriter.write(it, this) }.toString()
}

/** A config value written as one JSON string or number (an enum, a retry class). */
interface ConfigValue {
    /** A String or a Long. */
    fun jsonValue(): Any
}

/** Writes the fields of one JSON object. */
class JsonObjectWriter private constructor(private val out: StringBuilder) {
    private var first = true

    /** Writes `key` with [value]; null is written as JSON null. */
    fun put(key: String, value: Any?) {
        if (!first) out.append(',')
        first = false
        string(out, key)
        out.append(':')
        value(out, value)
    }

    /** Writes `key` only when [value] is not null: an unset field is core's default. */
    fun putIfSet(key: String, value: Any?) {
        if (value != null) put(key, value)
    }

    internal companion object {
        fun write(out: StringBuilder, obj: ConfigObject) {
            out.append('{')
            obj.writeJson(JsonObjectWriter(out))
            out.append('}')
        }

        private fun value(out: StringBuilder, value: Any?) {
            when (value) {
                null -> out.append("null")
                is ConfigObject -> write(out, value)
                is ConfigValue -> value(out, value.jsonValue())
                is String -> string(out, value)
                is Boolean, is Long, is Int -> out.append(value.toString())
                // NaN and the infinities are not JSON numbers: written as strings, core
                // refuses them naming the field.
                is Double -> if (value.isFinite()) out.append(value.toString()) else string(out, value.toString())
                is List<*> -> {
                    out.append('[')
                    value.forEachIndexed { i, item ->
                        if (i > 0) out.append(',')
                        value(out, item)
                    }
                    out.append(']')
                }
                is Map<*, *> -> {
                    out.append('{')
                    var firstEntry = true
                    for ((k, v) in value) {
                        if (!firstEntry) out.append(',')
                        firstEntry = false
                        string(out, k.toString())
                        out.append(':')
                        value(out, v)
                    }
                    out.append('}')
                }
                else -> throw IllegalArgumentException("not a config value: ${value::class.qualifiedName}")
            }
        }

        private fun string(out: StringBuilder, s: String) {
            out.append('"')
            for (c in s) {
                when {
                    c == '"' -> out.append("\\\"")
                    c == '\\' -> out.append("\\\\")
                    c < ' ' -> out.append("\\u").append(String.format("%04x", c.code))
                    else -> out.append(c)
                }
            }
            out.append('"')
        }
    }
}

/**
 * A client from typed configuration: `Client(ClientConfig(services = mapOf(...)))`.
 * From Java: `new Client(config.toJson())`.
 *
 * @throws io.github.courierkit.ffi.CourierException.Config naming the field of the first
 *   invalid value.
 */
fun Client(config: ClientConfig): Client = Client(config.toJson())

/**
 * Connects a bus from typed configuration: `Bus.connect(BusConfig(urls = listOf(...)))`.
 *
 * @throws io.github.courierkit.ffi.CourierException.Config for an invalid config;
 *   `Connect` or `Tls` when no broker accepts.
 */
suspend fun Bus.Companion.connect(config: BusConfig): Bus = connect(config.toJson())
