/**
 * The launcher (`bin/radmesh`): `radmesh start` runs in the process it was started as (same pid), with V8's young
 * generation set to 8 MB a semi-space; `RADMESH_HEAP_TUNING=0`, or a `--max-semi-space-size` of one's own in
 * NODE_OPTIONS, leaves it as it is.
 */
import { readFileSync } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { startNode } from '../../scripts/lib/node-process.ts'

const consortium = await createScratchConsortium('Launcher')

/** The running node's command line, from /proc (the pid is the one spawned: the launcher replaced itself). */
async function commandLine(env: NodeJS.ProcessEnv): Promise<string[]> {
  const node = await startNode(await consortium.member('Launcher Site', 'site'), { env })
  try {
    return readFileSync(`/proc/${node.process.pid}/cmdline`, 'utf8').split('\0')
  } finally {
    await node.stop()
  }
}

test('radmesh start runs with 8 MB semi-spaces, in the process spawned', async () => {
  const args = await commandLine({})
  assert.ok(args.includes('--max-semi-space-size=8'), args.join(' '))
  assert.ok(args.includes('start'), 'the node itself, not a parent waiting on it')
})

test("RADMESH_HEAP_TUNING=0, or one's own --max-semi-space-size, leaves V8's young generation alone", async () => {
  const untuned = await commandLine({ RADMESH_HEAP_TUNING: '0' })
  assert.not.ok(
    untuned.some(a => a.startsWith('--max-semi-space-size')),
    untuned.join(' ')
  )
  const own = await commandLine({ NODE_OPTIONS: '--max-semi-space-size=16' })
  assert.not.ok(
    own.some(a => a.startsWith('--max-semi-space-size')),
    'not added to the command line'
  )
})

test.run()
