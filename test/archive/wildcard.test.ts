/**
 * DICOM wildcard matching without backtracking answers as a `u` regular expression does (`*` as `.*`, `?` as
 * `.`, anchored, case folded for fuzzy names), on random short patterns and values. Prints its seed.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { wildcardMatcher } from '../../node/archive/wildcard.ts'

const SEED = Number(process.env['WILDCARD_SEED'] ?? Date.now() % 1_000_000)

/** mulberry32: small, seeded, good enough to pick characters */
function random(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const reference = (pattern: string, ignoreCase: boolean): RegExp => {
  const literal = (c: string): string => c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  const source = [...pattern].map(c => (c === '*' ? '.*' : c === '?' ? '.' : literal(c))).join('')
  return new RegExp(`^${source}$`, ignoreCase ? 'isu' : 'su')
}

test(`random patterns and values match as the regular expression does (seed ${SEED})`, () => {
  const next = random(SEED)
  const letters = ['a', 'b', 'A', 'ä', 'Ä', '𝔄', '🦄', '^', '.']
  const pick = (from: string[]): string => from[Math.floor(next() * from.length)] as string
  const text = (length: number, from: string[]): string => Array.from({ length }, () => pick(from)).join('')
  for (let i = 0; i < 5000; i++) {
    const pattern = text(Math.floor(next() * 8), [...letters, '*', '*', '?'])
    const ignoreCase = next() < 0.5
    const match = wildcardMatcher(pattern, ignoreCase)
    const expected = reference(pattern, ignoreCase)
    for (let j = 0; j < 5; j++) {
      const value = text(Math.floor(next() * 10), letters)
      const what = `seed ${SEED}: "${pattern}" (ignoreCase ${ignoreCase}) against "${value}"`
      assert.is(match(value), expected.test(value), what)
    }
  }
})

test('a piece longer than 32 characters is found across words of the bit-parallel search', () => {
  const piece = `${'ab?'.repeat(30)}c`
  const match = wildcardMatcher(`*${piece}*`, false)
  assert.ok(match(`xx${'abz'.repeat(30)}cxx`))
  assert.not.ok(match(`xx${'abz'.repeat(29)}cxx`))
  assert.ok(match(`${'ab'.repeat(50)}${'abz'.repeat(30)}c`))
})

test.run()
