/**
 * Part 3 of the scale benchmark: the seeded random convergence test (test/e2e/convergence.test.ts) with
 * many nodes, each a `radmesh start` process, every pair linked through its own fault proxy, run as the
 * test runs it (uvu), with RADMESH_CONVERGENCE_NODES, _STEPS and RADMESH_SEED (random unless set). Prints
 * whether it converged, its seed, how long it took, and the nodes' summed RSS at its peak (sampled every
 * SAMPLE_MS).
 */
import { spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../lib/cli.ts'
import { say } from './scale-common.ts'

const SAMPLE_MS = 2_000

/** RSS (MB) of every live child of `pid`, summed, and how many there are. */
async function childrenRss(pid: number): Promise<{ mb: number; count: number }> {
  let kb = 0
  let count = 0
  for (const entry of await fs.readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(entry)) continue
    const status = await fs.readFile(`/proc/${entry}/status`, 'utf8').catch(() => '')
    if (Number(/PPid:\s+(\d+)/.exec(status)?.[1]) !== pid) continue
    kb += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0)
    count++
  }
  return { mb: kb / 1024, count }
}

export async function convergencePart(nodes: number, steps: number): Promise<void> {
  const links = (nodes * (nodes - 1)) / 2
  say(
    `== part 3: convergence, ${nodes} nodes in separate processes (a site and ${nodes - 1} radiologists, ` +
      `a proxy per pair: ${links} links), ${steps} steps ==`
  )
  const uvu = join(ROOT, 'node_modules', 'uvu', 'bin.js')
  const seed = Number(process.env['RADMESH_SEED'] ?? Math.floor(Math.random() * 2 ** 31))
  const begun = performance.now()
  const child = spawn(process.execPath, [uvu, '--no-color', 'test/e2e', 'convergence'], {
    cwd: ROOT,
    env: {
      ...process.env,
      RADMESH_SEED: String(seed),
      RADMESH_CONVERGENCE_NODES: String(nodes),
      RADMESH_CONVERGENCE_STEPS: String(steps)
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  let peak = { mb: 0, count: 0 }
  const timer = setInterval(() => {
    void childrenRss(child.pid ?? 0).then(now => {
      if (now.mb > peak.mb) peak = now
    })
  }, SAMPLE_MS)
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
  clearInterval(timer)
  const seconds = (performance.now() - begun) / 1000
  const outcome = code === 0 ? 'converged' : `FAILED (exit ${code})`
  say(
    `${outcome}: seed ${seed} (RADMESH_SEED=${seed} to replay), ${seconds.toFixed(0)} s in all, ` +
      `peak ${peak.count} node processes holding ${peak.mb.toFixed(0)} MB RSS together`
  )
  if (code !== 0) say(output.split('\n').slice(-60).join('\n'))
  say()
}
