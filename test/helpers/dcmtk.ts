/**
 * Driving Debian's DCMTK from tests: storescu, dcmdump. TCP_NODELAY=1 as ENGINEERING.md measured.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'

export interface ToolResult { code: number | null, stdout: string, stderr: string }

export async function runTool (command: string, args: string[], onOutput?: (text: string) => void): Promise<ToolResult> {
  const child = spawn(command, args, { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); onOutput?.(c.toString()) })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); onOutput?.(c.toString()) })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout, stderr }
}

/** storescu to AE@127.0.0.1:port; `-v` so each response is printed. */
export async function storescu (port: number, aeTitle: string, paths: string[], extra: string[] = [], onOutput?: (text: string) => void): Promise<ToolResult> {
  return await runTool('storescu', ['-v', '-aec', aeTitle, '-aet', 'TESTSCU', ...extra, '127.0.0.1', String(port), ...paths], onOutput)
}

/** Where the data set starts in a Part 10 file: after the preamble, DICM and the File Meta Information group. */
export function datasetStart (file: Uint8Array): number {
  const view = Buffer.from(file.buffer, file.byteOffset, file.byteLength)
  if (view.toString('latin1', 128, 132) !== 'DICM') throw new Error('not Part 10')
  // (0002,0000) UL group length: tag(4) VR(2) len(2) value(4)
  return 132 + 12 + view.readUInt32LE(140)
}
