/**
 * What the parts of the scale benchmark share: node processes started with the probe (scale-probe.ts) and
 * asked for a sample, percentiles, units, table printing, and HOMEs kept under /tmp between runs.
 */
import { promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type StartedNode, type StartOptions, startNode } from '../lib/node-process.ts'
import { freePort } from '../lib/ports.ts'
import { waitFor } from '../lib/wait.ts'
import type { ProbeSample } from './scale-probe.ts'

const PROBE = join(import.meta.dirname, 'scale-probe.ts')
/** Generated HOMEs are kept here between runs (a year of cases takes minutes to make). */
export const CACHE = process.env['RADMESH_SCALE_CACHE'] ?? join(tmpdir(), 'radmesh-scale-cache')

export interface ProbedNode extends StartedNode {
  /** seconds from spawn to the node's "viewer:" line */
  startSeconds: number
  sample(): Promise<ProbeSample>
}

/** Starts `radmesh start` with the probe loaded, on a p2p port chosen here. */
export async function startProbed(home: string, options: StartOptions = {}): Promise<ProbedNode> {
  const p2pPort = options.p2pPort ?? (await freePort())
  const file = join(home, 'probe.json')
  await fs.rm(file, { force: true })
  const env = {
    ...options.env,
    NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import ${PROBE}`.trim(),
    RADMESH_PROBE_FILE: file,
    RADMESH_PROBE_P2P_PORT: String(p2pPort)
  }
  const begun = performance.now()
  const node = await startNode(home, { ...options, p2pPort, env })
  const startSeconds = (performance.now() - begun) / 1000
  const sample = async (): Promise<ProbeSample> => {
    const asked = Date.now()
    node.process.kill('SIGUSR2')
    return await waitFor(
      `a probe sample of ${home}`,
      async () => {
        const text = await fs.readFile(file, 'utf8').catch(() => undefined)
        const parsed = text === undefined ? undefined : (JSON.parse(text) as ProbeSample)
        return parsed !== undefined && parsed.at >= asked ? parsed : undefined
      },
      10_000,
      20
    )
  }
  return Object.assign(node, { startSeconds, sample })
}

/** VmRSS and VmHWM of a process, in MB. */
export async function rssOf(pid: number | undefined): Promise<{ rss: number; peak: number }> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0)
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 }
}

/** CPU seconds (user + system) a process has used, from /proc. */
export async function cpuSecondsOf(pid: number | undefined): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number
}

export const kb = (bytes: number): string =>
  bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} KB`

export const say = (line = ''): void => {
  process.stdout.write(`${line}\n`)
}

/** Prints rows under a header, each column as wide as its widest cell. */
export function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')
  say(line(header))
  for (const row of rows) say(line(row))
}

/** Copies a folder (a consortium's HOMEs) to another place, whole. */
export async function copyDir(from: string, to: string): Promise<void> {
  await fs.cp(from, to, { recursive: true, preserveTimestamps: true })
}

export async function isDir(path: string): Promise<boolean> {
  return (await fs.stat(path).catch(() => undefined))?.isDirectory() === true
}

/** "1000,10k,100000" -> [1000, 10000, 100000] */
export function sizes(text: string): number[] {
  return text
    .split(',')
    .map(s => s.trim())
    .filter(s => s !== '')
    .map(s => Number(s.replace(/k$/i, '000')))
}
