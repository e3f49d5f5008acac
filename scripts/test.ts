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

/**
 * The whole suite runs in two lanes side by side: the end-to-end tests (test/e2e: real node processes, DCMTK,
 * Orthanc, Chromium, mostly waiting on them) one file at a time, and every other test file beside them, one at
 * a time and at a lower CPU priority, so the end-to-end tests' timings are what they would be alone. The e2e
 * lane's output is shown as it comes; the other lane's once both are done. With a PATTERN, one lane.
 */
interface Lane {
  title: string
  pattern: string
  /** the lane's output is shown once the suite is done, not as it comes */
  quiet?: boolean
  nice?: boolean
}
const lanes: Lane[] =
  pattern === undefined
    ? [
        { title: 'end-to-end tests (uvu, test/e2e)', pattern: '^e2e/.*\\.test\\.ts$' },
        {
          title: 'unit tests (uvu, every other test file)',
          pattern: '^(?!e2e/).*\\.test\\.ts$',
          quiet: true,
          nice: true
        }
      ]
    : [{ title: 'tests (uvu)', pattern: `${pattern}.*\\.test\\.ts$|${pattern}` }]

async function runLane(lane: Lane): Promise<{ output: string; code: number }> {
  let output = ''
  const uvu = [bin('uvu'), '--no-color', 'test', lane.pattern, '-i', 'helpers']
  const [command, args] = lane.nice ? ['nice', ['-n', '10', process.execPath, ...uvu]] : [process.execPath, uvu]
  if (!lane.quiet) return { code: await run(lane.title, command, args, text => (output += text)), output }
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: plainEnv })
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code: code ?? 1, output }
}

const results = await Promise.all(lanes.map(runLane))
for (const [i, lane] of lanes.entries()) {
  if (lane.quiet) process.stdout.write(`\n== ${lane.title}\n${results[i]?.output ?? ''}`)
}
const sum = (field: string): number =>
  results.reduce((n, { output }) => n + Number(new RegExp(`${field}:\\s+(\\d+)`).exec(output)?.[1] ?? 0), 0)
const [total, passed, skipped] = [sum('Total'), sum('Passed'), sum('Skipped')]
// A lane that exited non-zero with every test counted as passed still failed (a file that did not load, say).
const crashed = results.filter(({ code, output }) => code !== 0 && !/\bFAIL\b/.test(output)).length
const failed = total - passed - skipped + failedChecks + crashed
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}\n`)
process.exit(failed > 0 || total === 0 ? 1 : 0)
