/**
 * scripts/check-boundaries.ts on small made-up trees: a clean tree passes; an upward import, a type import
 * across a boundary, an `export … from` out of protocol/, an import of test/ from scripts/ and a circle of
 * files are each refused with a line that names the file and says why.
 */
import { execFile } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { dirname, join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ROOT } from '../../scripts/lib/cli.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

/** A clean little tree: every import goes down. */
const CLEAN: Record<string, string> = {
  'protocol/ids.ts': 'export type Id = string\n',
  'node/errors.ts': 'export class RadmeshError extends Error {}\n',
  'node/crdt/documents.ts': "import type { Id } from '../../protocol/ids.ts'\nexport const open = (id: Id): Id => id\n",
  'node/worklist/worklist.ts': "import { open } from '../crdt/documents.ts'\nexport const list = open\n",
  'node/reports/reports.ts': "import { RadmeshError } from '../errors.ts'\nexport const fail = new RadmeshError()\n",
  'node/workflow/workflow.ts':
    "import { list } from '../worklist/worklist.ts'\n" +
    "import { fail } from '../reports/reports.ts'\nexport const both = [list, fail]\n",
  'viewer/src/main.ts': "import type { Id } from '../../protocol/ids.ts'\nexport const id: Id = 'x'\n",
  'scripts/lib/temp.ts': "export { open } from '../../node/crdt/documents.ts'\n",
  'test/crdt/documents.test.ts': "import { open } from '../../scripts/lib/temp.ts'\nopen('a')\n"
}

async function check(changes: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const root = await tempDir('radmesh-boundaries-')
  for (const [file, text] of Object.entries({ ...CLEAN, ...changes })) {
    await fs.mkdir(dirname(join(root, file)), { recursive: true })
    await fs.writeFile(join(root, file), text)
  }
  return await new Promise(resolve => {
    const script = join(ROOT, 'scripts/check-boundaries.ts')
    execFile(process.execPath, [script, root], (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : (error.code as number | null), stderr })
    })
  })
}

test('a tree whose imports all go down passes', async () => {
  const { code, stderr } = await check({})
  assert.is(stderr, '')
  assert.is(code, 0)
})

test('a type import from a lower layer up to a higher one is refused, naming both', async () => {
  const { code, stderr } = await check({
    'node/crdt/presence.ts': "import type { fail } from '../reports/reports.ts'\nexport type F = typeof fail\n"
  })
  assert.is(code, 1)
  assert.match(
    stderr,
    'node/crdt/presence.ts:1: imports node/reports/reports.ts: node/crdt imports node/reports, ' +
      'which is above it (NODE_LAYERS: only those below)'
  )
})

test('worklist and reports never import each other', async () => {
  const { code, stderr } = await check({
    'node/reports/reports.ts': "import { list } from '../worklist/worklist.ts'\nexport const fail = list\n"
  })
  assert.is(code, 1)
  assert.match(stderr, 'node/reports imports node/worklist, which is beside it')
})

test('protocol re-exporting node code, and viewer importing node, are refused', async () => {
  const { code, stderr } = await check({
    'protocol/ids.ts': "export { open } from '../node/crdt/documents.ts'\nexport type Id = string\n",
    'viewer/src/main.ts': "import { open } from '../../node/crdt/documents.ts'\nopen('x')\n"
  })
  assert.is(code, 1)
  assert.match(stderr, 'protocol/ids.ts:1: imports node/crdt/documents.ts: protocol/ is shared with the browser')
  assert.match(
    stderr,
    'viewer/src/main.ts:1: imports node/crdt/documents.ts: viewer/ imports only viewer/ and protocol/'
  )
})

test('scripts importing test, and node importing scripts, are refused', async () => {
  const { code, stderr } = await check({
    'scripts/demo.ts': "import '../test/crdt/documents.test.ts'\n",
    'node/errors.ts': "import '../scripts/lib/temp.ts'\nexport class RadmeshError extends Error {}\n"
  })
  assert.is(code, 1)
  assert.match(stderr, 'scripts/demo.ts:1: imports test/crdt/documents.test.ts: scripts/ never imports test/')
  assert.match(stderr, 'node/errors.ts:1: imports scripts/lib/temp.ts: node/ never imports scripts/')
})

test('a circle of imports is refused with its path, type imports included', async () => {
  const { code, stderr } = await check({
    'viewer/src/page.ts': "import type { id } from './main.ts'\nexport const page = (): typeof id => 'x'\n",
    'viewer/src/main.ts': "import { page } from './page.ts'\nexport const id: string = page()\n"
  })
  assert.is(code, 1)
  assert.match(
    stderr,
    'viewer/src/main.ts: circular import: viewer/src/main.ts -> viewer/src/page.ts -> viewer/src/main.ts'
  )
})

test('a node folder in no layer is named', async () => {
  const { code, stderr } = await check({
    'node/gadgets/gadget.ts': "import { open } from '../crdt/documents.ts'\nopen('x')\n"
  })
  assert.is(code, 1)
  assert.match(stderr, 'node/gadgets/ is in no layer: add it to NODE_LAYERS')
})

test.run()
