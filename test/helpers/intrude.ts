/** Runs the would-be intruder (`test/helpers/intruder.ts`) in its own process, for the membership tests. */
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
  const script = join(ROOT, 'test/helpers/intruder.ts')
  const child = ownChild(spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }))
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
  if (code !== 0 || line === undefined || line === '') throw new Error(`intruder exited ${code}: ${stderr}`)
  return JSON.parse(line) as IntrusionResult
}
