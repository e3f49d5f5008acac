/**
 * Start benchmark: how long a site's node takes to come up and to stop, against Orthanc, in one run.
 *
 *   npm run bench -- start [--rounds 5]
 *
 * Each round restarts, in rotating order:
 * - radmesh: a site (`--dicom`), its HOME kept from the last run and its pack's zero-filled space in place (256
 *   MiB, as a site that has been running has); up is when it prints its viewer line (every listener open);
 * - radmesh with Node's compile cache off (`NODE_DISABLE_COMPILE_CACHE=1`), the same HOME;
 * - Orthanc (Debian's, `startOrthanc`, its storage kept between runs); up is when its REST API answers (`/system`,
 *   asked every 10 ms).
 * Down is from SIGTERM to the process's exit. Also timed: `radmesh status` (no node running: it answers so) and
 * `radmesh --version`, the commands a script or an operator runs most.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpus, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { DEFAULT_PREALLOCATE_SITE } from '../../node/archive/index.ts'
import { CLI } from '../lib/cli.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { startOrthanc } from '../lib/orthanc.ts'
import { freePort } from '../lib/ports.ts'
import { tempDir } from '../lib/temp.ts'
import { packSpaceReady, peakRss } from './common.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } })
const rounds = Number(values.rounds)

interface Timing {
  upMs: number
  downMs: number
  rssMb: number
}

async function stop(child: ChildProcess): Promise<number> {
  const started = performance.now()
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const [code, signal] = (await exited) as [number | null, string | null]
  if (code !== 0) throw new Error(`it ended with ${code === null ? `signal ${signal}` : `exit code ${code}`}`)
  return performance.now() - started
}

/** `radmesh start` of a site on `home`, resolved once it prints its viewer line (every listener open). */
async function launchSite(home: string, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; upMs: number }> {
  const args = [
    CLI,
    'start',
    '--home',
    home,
    '--dicom',
    String(await freePort()),
    '--listen',
    `/ip4/127.0.0.1/tcp/${await freePort()}`,
    '--http',
    `127.0.0.1:${await freePort()}`,
    '--no-mdns'
  ]
  const started = performance.now()
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const upMs = await new Promise<number>((resolve, reject) => {
    const seen = (chunk: Buffer): void => {
      output += chunk.toString()
      if (/^viewer: /m.test(output)) resolve(performance.now() - started)
    }
    child.stdout.on('data', seen)
    child.stderr.on('data', seen)
    child.once('exit', code => reject(new Error(`radmesh start exited ${code}: ${output}`)))
  })
  return { child, upMs }
}

async function radmeshSite(home: string, env: NodeJS.ProcessEnv = {}): Promise<Timing> {
  const { child, upMs } = await launchSite(home, env)
  const rssMb = await peakRss(child.pid)
  return { upMs, rssMb, downMs: await stop(child) }
}

async function orthanc(dir: string): Promise<Timing> {
  const started = performance.now()
  const server = await startOrthanc({ dir, readyPollMs: 10 })
  const upMs = performance.now() - started
  const rssMb = await peakRss(server.process.pid)
  return { upMs, rssMb, downMs: await stop(server.process) }
}

async function commandMs(args: string[]): Promise<number> {
  const started = performance.now()
  const child = spawn(process.execPath, [CLI, ...args], { stdio: 'ignore' })
  await once(child, 'exit')
  return performance.now() - started
}

process.stdout.write(
  `start benchmark: ${rounds} rounds\nmachine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ` +
    `${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ${new Date().toISOString()}\n`
)
const consortium = await createScratchConsortium('Start Bench')
const home = await consortium.member('Start Site', 'site')
// A first start makes the site's pack and fills its space with zeros (in the background), as a running site has.
{
  const started = performance.now()
  const { child } = await launchSite(home)
  await packSpaceReady(home, DEFAULT_PREALLOCATE_SITE)
  await stop(child)
  process.stdout.write(
    `first start, its pack's ${DEFAULT_PREALLOCATE_SITE / 2 ** 20} MiB zero-filled: ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s\n\n`
  )
}
const orthancDir = await tempDir('orthanc-start-')
await orthanc(orthancDir)

const contenders: Array<{ name: string; run: () => Promise<Timing> }> = [
  { name: 'radmesh site', run: async () => await radmeshSite(home) },
  {
    name: 'radmesh site, no compile cache',
    run: async () => await radmeshSite(home, { NODE_DISABLE_COMPILE_CACHE: '1' })
  },
  { name: 'Orthanc', run: async () => await orthanc(orthancDir) }
]
const timings = new Map<string, Timing[]>(contenders.map(c => [c.name, []]))
const status: number[] = []
const version: number[] = []
for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < contenders.length; i++) {
    const contender = contenders[(i + round) % contenders.length] as (typeof contenders)[number]
    timings.get(contender.name)?.push(await contender.run())
  }
  status.push(await commandMs(['status', '--home', home]))
  version.push(await commandMs(['--version']))
}

const median = (list: number[]): number => [...list].sort((x, y) => x - y)[Math.floor(list.length / 2)] as number
const range = (list: number[]): string =>
  `${median(list).toFixed(0)} (${Math.min(...list).toFixed(0)}-${Math.max(...list).toFixed(0)})`
const orthancUp = median((timings.get('Orthanc') ?? []).map(t => t.upMs))
const orthancDown = median((timings.get('Orthanc') ?? []).map(t => t.downMs))
process.stdout.write(
  '| process | up, ms (min-max) | down, ms (min-max) | peak RSS at up | up / Orthanc | down / Orthanc |\n'
)
process.stdout.write('| --- | --- | --- | --- | --- | --- |\n')
for (const { name } of contenders) {
  const list = timings.get(name) ?? []
  const up = list.map(t => t.upMs)
  const down = list.map(t => t.downMs)
  process.stdout.write(
    `| ${name} | ${range(up)} | ${range(down)} | ${Math.max(...list.map(t => t.rssMb)).toFixed(0)} MB | ` +
      `${(median(up) / orthancUp).toFixed(2)}x | ${(median(down) / orthancDown).toFixed(2)}x |\n`
  )
}
process.stdout.write(
  `\nradmesh status (no node running): ${range(status)} ms; radmesh --version: ${range(version)} ms\n`
)
