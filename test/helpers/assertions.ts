import * as assert from 'uvu/assert'
import { MalformedMessageError } from '../../protocol/errors.ts'

/** Asserts that `fn` throws MalformedMessageError (not another error, and not nothing). */
export function throwsMalformed(fn: () => unknown, what: string): void {
  try {
    fn()
  } catch (error) {
    assert.instance(error, MalformedMessageError, what)
    return
  }
  assert.unreachable(`${what} was accepted`)
}
