/** Runs a would-be intruder (`test/helpers/intruder.ts`, or another script) in its own process, for the membership and relay tests. */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { ownChild } from '../../scripts/lib/children.ts'
import { ROOT } from '../../scripts/lib/cli.ts'

export interface IntrusionResult {
  peerId: string
  dialed: boolean
  dialError?: string
  streamOpened: boolean
  streamError?: string
  sent?: number
  afterwards?: boolean
}

/** Runs `test/helpers/intruder.ts ARGS…` and returns the JSON line it printed last. */
export async function intrude(args: string[]): Promise<IntrusionResult> {
  return await lastJsonLineOf<IntrusionResult>('test/helpers/intruder.ts', args)
}

/**
 * Runs a would-be intruder script (a path under the repository) in its own process and returns the JSON line it
 * printed last; a non-zero exit or no line is an error with what it printed on stderr.
 */
export async function lastJsonLineOf<T>(script: string, args: string[]): Promise<T> {
  const child = ownChild(spawn(process.execPath, [join(ROOT, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] }))
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  const line = stdout.trim().split('\n').pop()
  if (code !== 0 || line === undefined || line === '') throw new Error(`${script} exited ${code}: ${stderr}`)
  return JSON.parse(line) as T
}
