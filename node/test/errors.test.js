'use strict'
// Error codes are core's kinds by one rule: `COURIER_` and the kind in upper case.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { Client } = require('..')

const root = path.join(__dirname, '..', '..')

// Core is the source of the kinds: `ErrorKind::code()` in core/src/error.rs.
function coreKinds() {
  const source = fs.readFileSync(path.join(root, 'core', 'src', 'error.rs'), 'utf8')
  const kinds = [...source.matchAll(/ErrorKind::(\w+) => "(\w+)"/g)].map((m) => m[2])
  assert.ok(kinds.length > 0, 'no kind codes found in core/src/error.rs')
  return kinds
}

const codeOf = (kind) => `COURIER_${kind.toUpperCase()}`

test('index.d.ts lists one code per core kind, each COURIER_ + the kind in upper case', () => {
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')
  const union = dts.match(/\bcode:\s*((?:\s*\|?\s*'COURIER_\w+')+)/)
  assert.ok(union, 'CourierError.code union not found in index.d.ts')
  const listed = [...union[1].matchAll(/'(COURIER_\w+)'/g)].map((m) => m[1])
  assert.deepEqual([...listed].sort(), coreKinds().map(codeOf).sort())
})

test('errors from core carry code COURIER_ + their kind', async () => {
  const errors = []
  try {
    new Client({ services: { orders: { endpoints: [] } } })
  } catch (e) {
    errors.push(e)
  }
  const client = new Client({ services: { orders: { endpoints: ['http://127.0.0.1:1'] } } })
  await client.get('nope').catch((e) => errors.push(e))
  client.close()
  await client.get('orders').catch((e) => errors.push(e))
  assert.deepEqual(errors.map((e) => e.kind), ['config', 'config', 'closed'])
  for (const e of errors) assert.equal(e.code, codeOf(e.kind))
})
