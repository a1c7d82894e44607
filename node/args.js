'use strict'
// Argument types for the native layer. A wrong JavaScript type is a COURIER_CONFIG error
// naming the argument, like every other bad input: never napi's raw converter error
// (`StringExpected`), a TypeError without a code, or a silent `String(v)` that sends the
// text "5" or splits a string into numbered headers. Only types are checked here; ranges
// and rules (durations, header syntax, limits) belong to the core.

/** The error the native layer raises for a config error, built for a type mismatch. */
function configError(field, reason) {
  const err = new TypeError(`${field}: ${reason}`)
  Object.assign(err, { code: 'COURIER_CONFIG', kind: 'config', field, reason })
  return err
}

function typeName(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v
}

const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map)

/** An options object: `undefined`/`null` is `{}`. */
function options(field, v) {
  if (v == null) return {}
  if (!isPlainObject(v)) throw configError(field, `expected an object, got ${typeName(v)}`)
  return v
}

function string(field, v) {
  if (typeof v !== 'string') throw configError(field, `expected a string, got ${typeName(v)}`)
  return v
}

const optString = (field, v) => (v == null ? undefined : string(field, v))

function optBool(field, v) {
  if (v == null) return undefined
  if (typeof v !== 'boolean') throw configError(field, `expected a boolean, got ${typeName(v)}`)
  return v
}

/** A number; whether it is whole, finite and in range is the core's check. */
function optNumber(field, v) {
  if (v == null) return undefined
  if (typeof v !== 'number') throw configError(field, `expected a number, got ${typeName(v)}`)
  return v
}

/** An array of numbers, each checked as `optNumber` checks one (`field[i]`). */
function optNumbers(field, v) {
  if (v == null) return undefined
  if (!Array.isArray(v)) throw configError(field, `expected an array of numbers, got ${typeName(v)}`)
  return v.map((n, i) => {
    if (typeof n !== 'number') throw configError(`${field}[${i}]`, `expected a number, got ${typeName(n)}`)
    return n
  })
}

/** `[name, value]` pairs from an object, a Map or an array of pairs. Values must be
 * strings, or also finite numbers and bigints when `numbers` (query parameters). */
function entries(field, items, numbers = false) {
  if (items == null) return undefined
  let list
  if (items instanceof Map) list = [...items]
  else if (Array.isArray(items)) list = items
  else if (isPlainObject(items)) list = Object.entries(items)
  else throw configError(field, `expected an object, a Map or an array of pairs, got ${typeName(items)}`)
  return list.map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2) throw configError(field, 'expected [name, value] pairs')
    const [name, value] = pair
    string(field, name)
    if (typeof value === 'string') return [name, value]
    if (numbers && ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'bigint')) {
      return [name, String(value)]
    }
    throw configError(`${field}.${name}`, `expected a string${numbers ? ' or a number' : ''}, got ${typeName(value)}`)
  })
}

/** A name → string object, as the native messaging layer takes headers. */
function stringMap(field, items) {
  const list = entries(field, items)
  return list === undefined ? undefined : Object.fromEntries(list)
}

function body(field, v) {
  if (v == null) return undefined
  if (typeof v === 'string') return Buffer.from(v)
  if (Buffer.isBuffer(v)) return v
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  if (v instanceof ArrayBuffer) return Buffer.from(v)
  throw configError(field, `expected a string, Buffer, TypedArray or ArrayBuffer, got ${typeName(v)}`)
}

module.exports = { configError, options, string, optString, optBool, optNumber, optNumbers, entries, stringMap, body }
