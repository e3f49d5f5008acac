/** The error table, the error classes and docs/ERRORS.md name the same codes. */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ERROR_TABLE } from '../node/errors.ts'
import { ROOT } from '../scripts/lib/cli.ts'

test('every code in the error table is documented in docs/ERRORS.md, and nothing else is', async () => {
  const doc = await fs.readFile(join(ROOT, 'docs/ERRORS.md'), 'utf8')
  const documented = [...doc.matchAll(/^\| `(RADMESH_[A-Z_]+)` \| (\d+) \| (\d+) \|/gm)].map(m => [
    m[1],
    Number(m[2]),
    Number(m[3])
  ])
  const table = Object.entries(ERROR_TABLE).map(([code, entry]) => [code, entry.httpStatus, entry.exitCode])
  assert.equal(documented.sort(), table.sort())
})

test.run()
