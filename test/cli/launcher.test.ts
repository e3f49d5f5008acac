/**
 * The launcher (`bin/radmesh`): `radmesh start` runs in the process it was started as (same pid), with V8's young
 * generation set to 8 MB a semi-space and glibc's allocator settings (node/heap.ts `MALLOC_ENV`);
 * `RADMESH_HEAP_TUNING=0`, or a setting of one's own, leaves each as it is.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { startNode } from '../../scripts/lib/node-process.ts'
import { MALLOC_ENV } from '../../node/heap.ts'

const consortium = await createScratchConsortium('Launcher')

/**
 * The running node's command line and environment, from /proc (the pid is the one spawned: the launcher replaced
 * itself).
 */
async function running(env: NodeJS.ProcessEnv): Promise<{ args: string[]; environment: string[] }> {
  const node = await startNode(await consortium.member('Launcher Site', 'site'), { env })
  try {
    const read = (file: string): string[] => readFileSync(`/proc/${node.process.pid}/${file}`, 'utf8').split('\0')
    return { args: read('cmdline'), environment: read('environ') }
  } finally {
    await node.stop()
  }
}
const commandLine = async (env: NodeJS.ProcessEnv): Promise<string[]> => (await running(env)).args

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

test("radmesh start runs with glibc's allocator settings, each unless one's own is set or tuning is off", async () => {
  const settings = (environment: string[]): Record<string, string> =>
    Object.fromEntries(
      environment
        .filter(entry => entry.startsWith('MALLOC_'))
        .map(entry => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)])
    )
  assert.equal(MALLOC_ENV, {
    MALLOC_MMAP_THRESHOLD_: '4194304',
    MALLOC_ARENA_MAX: '2',
    MALLOC_TRIM_THRESHOLD_: '16777216'
  })
  assert.equal(settings((await running({})).environment), MALLOC_ENV)
  assert.equal(settings((await running({ MALLOC_MMAP_THRESHOLD_: '1048576' })).environment), {
    ...MALLOC_ENV,
    MALLOC_MMAP_THRESHOLD_: '1048576'
  })
  assert.equal(settings((await running({ RADMESH_HEAP_TUNING: '0' })).environment), {})
  const own = await running({ NODE_OPTIONS: '--max-semi-space-size=16' })
  assert.equal(settings(own.environment), MALLOC_ENV, 'with a semi-space of its own')
  assert.not.ok(
    own.args.some(a => a.startsWith('--max-semi-space-size')),
    own.args.join(' ')
  )
})

test('SIGTERM the moment the node says it is up: it stops cleanly, exit code 0, its HOME free again', async () => {
  const home = await consortium.member('Launcher Stop', 'site')
  for (let round = 0; round < 2; round++) {
    // startNode resolves as soon as the node prints its viewer line; stop() sends SIGTERM at once.
    const node = await startNode(home)
    await node.stop()
    assert.equal([node.process.exitCode, node.process.signalCode], [0, null], node.output())
    assert.not.ok(existsSync(join(home, 'running.json')), 'the running marker is gone')
  }
})

test.run()
