/**
 * Driving Debian's DCMTK (storescu, echoscu, storescp, dcmdump…). Every run has TCP_NODELAY=1 in its
 * environment: DCMTK reads it, and without it 400 CT slices took 18 s on loopback instead of 0.9 s.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { ownChild } from './children.ts'

export interface ToolResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `command ARGS…` to completion; `onOutput` sees stdout and stderr as they come. */
export async function runTool(command: string, args: string[], onOutput?: (text: string) => void): Promise<ToolResult> {
  const env = { ...process.env, TCP_NODELAY: '1' }
  const child = ownChild(spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }))
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString()
    onOutput?.(c.toString())
  })
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString()
    onOutput?.(c.toString())
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

/** storescu to AE@127.0.0.1:port; `-v` so each response is printed. */
export async function storescu(
  port: number,
  aeTitle: string,
  paths: string[],
  extra: string[] = [],
  onOutput?: (text: string) => void
): Promise<ToolResult> {
  const args = ['-v', '-aec', aeTitle, '-aet', 'TESTSCU', ...extra, '127.0.0.1', String(port), ...paths]
  return await runTool('storescu', args, onOutput)
}
