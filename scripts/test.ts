/**
 * `npm test`: type check, lint, import boundaries, circular imports, then the uvu suite.
 * Runs on the Node that `npm ci` installed (node_modules/.bin is first on PATH under npm).
 * Ends with the line "N passed, N failed" and a non-zero exit code on any failure.
 *
 *   npm test                    everything
 *   npm test -- PATTERN         only test files whose path matches PATTERN (a regular expression)
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'

const ROOT = join(import.meta.dirname, '..')
const bin = (name: string): string => join(ROOT, 'node_modules/.bin', name)
const pattern = process.argv[2]

// Plain text output, so the summary can be read (uvu colours only when FORCE_COLOR is set or on a TTY).
const { FORCE_COLOR: _ignored, ...plainEnv } = process.env

async function run(title: string, command: string, args: string[], tee?: (text: string) => void): Promise<number> {
  process.stdout.write(`\n== ${title}\n`)
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: plainEnv })
  child.stdout.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk)
    tee?.(chunk.toString())
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  return code ?? 1
}

const [major] = process.versions.node.split('.').map(Number)
if ((major ?? 0) < 22) {
  process.stderr.write(
    `npm test needs the project's Node 24 (this is ${process.version}); run "npm ci" first, then "npm test"\n`
  )
  process.exit(1)
}
process.stdout.write(`node ${process.version}\n`)
if ((await run('system packages (Debian)', process.execPath, ['scripts/system-deps.ts'])) !== 0) {
  process.stdout.write('\n0 passed, 1 failed\n')
  process.exit(1)
}

const checks: Array<[string, string, string[]]> = [
  ['type check (tsc)', bin('tsc'), ['--noEmit', '-p', '.']],
  ['lint and format (biome)', bin('biome'), ['check']],
  // Every file of the tree, type imports included: the layers of docs/ARCHITECTURE.md, and no circular import.
  ['import boundaries and circular imports', process.execPath, ['scripts/check-boundaries.ts']]
]
let failedChecks = 0
if (pattern === undefined) {
  for (const [title, command, args] of checks) {
    if ((await run(title, command, args)) !== 0) failedChecks++
  }
}

let output = ''
const testPattern = pattern === undefined ? '\\.test\\.ts$' : `${pattern}.*\\.test\\.ts$|${pattern}`
const testsExit = await run(
  'tests (uvu)',
  process.execPath,
  [bin('uvu'), '--no-color', 'test', testPattern, '-i', 'helpers'],
  text => {
    output += text
  }
)
const total = Number(/Total:\s+(\d+)/.exec(output)?.[1] ?? 0)
const passed = Number(/Passed:\s+(\d+)/.exec(output)?.[1] ?? 0)
const skipped = Number(/Skipped:\s+(\d+)/.exec(output)?.[1] ?? 0)
const failed = total - passed - skipped + failedChecks + (testsExit !== 0 && total === passed + skipped ? 1 : 0)
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`)
process.exit(failed > 0 || total === 0 ? 1 : 0)
