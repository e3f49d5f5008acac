import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { ROOT } from './processes.ts'

export interface IntrusionResult { peerId: string, dialed: boolean, dialError?: string, streamOpened: boolean, streamError?: string, sent?: number, afterwards?: boolean }

/** Runs `test/helpers/intruder.ts` in its own process and returns what it saw. */
export async function intrude (args: string[]): Promise<IntrusionResult> {
  const child = spawn(process.execPath, [join(ROOT, 'test/helpers/intruder.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  const line = stdout.trim().split('\n').pop()
  if (code !== 0 || line === undefined || line === '') throw new Error(`intruder exited ${code}: ${stderr}`)
  return JSON.parse(line) as IntrusionResult
}
