/**
 * Running the radmesh command line (`bin/radmesh`) as a child process, the way a user does.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join, resolve } from 'node:path'
import { childEnv, ownChild } from './children.ts'

/** The repository's root folder. */
export const ROOT = resolve(import.meta.dirname, '../..')
export const CLI = join(ROOT, 'bin/radmesh')

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `radmesh ARGS…` to completion on this Node. */
export async function radmesh(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = ownChild(
    spawn(process.execPath, [CLI, ...args], {
      env: { ...childEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

/** Runs a radmesh command that must succeed and returns its stdout; a failure throws with what it printed. */
export async function radmeshOk(args: string[]): Promise<string> {
  const result = await radmesh(args)
  if (result.code !== 0) throw new Error(`radmesh ${args.join(' ')} exited ${result.code}: ${result.stderr.trim()}`)
  return result.stdout
}
