/**
 * What the benchmarks share: peak RSS of a process, timing storescu, a DCMTK storescp to send to, and
 * rounds in rotating order with the disk synced before each run, summarised as medians.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { runTool } from '../lib/dcmtk.ts'
import { freePort } from '../lib/ports.ts'
import { waitFor } from '../lib/wait.ts'

/** VmHWM of a running process, in MB. */
export async function peakRss(pid: number | undefined): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
}

/**
 * Waits until a node's pack holds its zero-filled space ahead (`--preallocate`), as a site that has been
 * running has; returns the seconds it took from the call.
 */
export async function packSpaceReady(home: string, bytes: number): Promise<number> {
  const started = performance.now()
  await waitFor(
    'the pack space to be zero-filled',
    async () => (await fs.stat(join(home, 'chunks', 'pack-000001.dat')).catch(() => undefined))?.size === bytes,
    60_000,
    50
  )
  return (performance.now() - started) / 1000
}

/** Sends a folder with storescu (TCP_NODELAY=1, as runTool sets) and returns the seconds it took. */
export async function timeStorescu(port: number, aeTitle: string, dir: string): Promise<number> {
  const started = performance.now()
  const result = await runTool('storescu', [
    '-aec',
    aeTitle,
    '-aet',
    'BENCH',
    '+sd',
    '+r',
    '127.0.0.1',
    String(port),
    dir
  ])
  const seconds = (performance.now() - started) / 1000
  if (result.code !== 0) throw new Error(`storescu to ${aeTitle} failed: ${result.stderr.slice(0, 500)}`)
  return seconds
}

export interface Run {
  seconds: number
  rssMb: number
  firstImageMs?: number
}
export interface Contender {
  name: string
  run(): Promise<Run>
}

/** Times storescu into a DCMTK storescp (which writes files, nothing else) under `work`. */
export async function runStorescp(work: string, studyDir: string): Promise<Run> {
  const port = await freePort()
  const out = await fs.mkdtemp(join(work, 'storescp-'))
  const scp: ChildProcess = spawn('storescp', ['-od', out, '-aet', 'STORESCP', String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: 'ignore'
  })
  try {
    await waitFor(
      'storescp',
      async () => (await runTool('echoscu', ['-aec', 'STORESCP', '127.0.0.1', String(port)])).code === 0,
      10_000,
      100
    )
    const seconds = await timeStorescu(port, 'STORESCP', studyDir)
    return { seconds, rssMb: await peakRss(scp.pid) }
  } finally {
    scp.kill('SIGTERM')
    await fs.rm(out, { recursive: true, force: true })
  }
}

export interface Summary {
  name: string
  runs: number
  seconds: number
  min: number
  max: number
  rssMb: number
  firstImageMs?: number
}

/** Runs each contender `rounds` times, the order rotating each round, the disk synced before each run. */
export async function runRounds(contenders: Contender[], rounds: number): Promise<Summary[]> {
  const runs = new Map<string, Run[]>(contenders.map(c => [c.name, []]))
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < contenders.length; i++) {
      const contender = contenders[(i + round) % contenders.length] as Contender
      // Dirty pages of the last run (or of the generated study) are written back first, so no run pays for another's.
      await runTool('sync', [])
      // A run that fails (a port taken between picking it and listening, say) is said, and tried once more.
      for (let attempt = 1; attempt <= 2; attempt++) {
        try {
          runs.get(contender.name)?.push(await contender.run())
          break
        } catch (error) {
          process.stdout.write(
            `${contender.name}: run failed${attempt === 1 ? ', trying once more' : ''}: ${(error as Error).message}\n`
          )
        }
      }
    }
  }
  const median = (list: number[]): number => [...list].sort((x, y) => x - y)[Math.floor(list.length / 2)] as number
  return contenders.map(contender => {
    const list = runs.get(contender.name) ?? []
    const times = list.map(run => run.seconds)
    const firsts = list.flatMap(run => (run.firstImageMs === undefined ? [] : [run.firstImageMs]))
    return {
      name: contender.name,
      runs: list.length,
      seconds: median(times),
      min: Math.min(...times),
      max: Math.max(...times),
      rssMb: Math.max(...list.map(run => run.rssMb)),
      ...(firsts.length === 0 ? {} : { firstImageMs: median(firsts) })
    }
  })
}
