/**
 * The fuzzer: mutated real inputs sent to a real node, which must stay up, answer, and keep what it acknowledged.
 *
 *   npm run fuzz -- dicom|stow|qido|p2p|all [--cases N] [--seed S] [--from CASE]
 *
 * Each kind starts its own node, stores known-good instances and records their SHA-256, then runs N cases
 * (default 1000); case i of seed S is generated from (kind, S, i) alone, so `--seed S --from i --cases 1`
 * replays it. Per kind it prints: tried, refused (a clear error), accepted, crashed, hung (no answer in 5 s,
 * or /api/health slower than 1 s), lost (an acknowledged instance gone or altered), and the answers that were
 * neither a clear refusal nor an acceptance (unclear: a 5xx, bytes that are not DICOM PDUs). Every crash, hang
 * or loss prints its seed and case, and the exit code is 1 when there was one.
 */
import { parseArgs } from 'node:util'
import { type KindOptions, type KindTally, summary } from './fuzz/common.ts'
import type { FuzzOptions, FuzzTally } from './fuzz/tally.ts'

const KINDS = ['dicom', 'stow', 'qido', 'p2p'] as const
type KindName = (typeof KINDS)[number]
const USAGE = 'npm run fuzz -- dicom|stow|qido|p2p|all [--cases N] [--seed S] [--from CASE]'
const P2P_MODULE = './fuzz/p2p.ts'

/** The runner of a kind, loaded when asked for (p2p is written elsewhere and may not be there yet). */
async function runnerOf(kind: KindName): Promise<((options: KindOptions) => Promise<FuzzTally | KindTally>) | string> {
  if (kind === 'dicom') return (await import('./fuzz/dicom.ts')).runDicomFuzz
  if (kind === 'stow') return (await import('./fuzz/stow.ts')).runStowFuzz
  if (kind === 'qido') return (await import('./fuzz/qido.ts')).runQidoFuzz
  try {
    // A specifier in a variable: the type check passes whether or not the file is there yet.
    const module = (await import(P2P_MODULE)) as { runP2pFuzz?: (options: FuzzOptions) => Promise<FuzzTally> }
    if (typeof module.runP2pFuzz !== 'function') return 'scripts/fuzz/p2p.ts does not export runP2pFuzz(options)'
    return module.runP2pFuzz
  } catch (error) {
    const e = error as { code?: string; message?: string }
    if (e.code === 'ERR_MODULE_NOT_FOUND' && e.message?.includes('fuzz/p2p.ts') === true) {
      return 'the p2p kind is missing: scripts/fuzz/p2p.ts (exporting runP2pFuzz) is not written yet'
    }
    throw error
  }
}

export async function main(argv: string[], say: (line: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { cases: { type: 'string' }, seed: { type: 'string' }, from: { type: 'string' } }
  })
  const kinds = positionals.flatMap(name => (name === 'all' ? [...KINDS] : [name]))
  const bad = kinds.find(name => !(KINDS as readonly string[]).includes(name))
  if (kinds.length === 0 || bad !== undefined) {
    say(`${bad === undefined ? 'which kind?' : `no fuzz kind "${bad}"`}; usage: ${USAGE}`)
    return 2
  }
  const number = (name: 'cases' | 'seed' | 'from', fallback: number): number => {
    const text = values[name]
    if (text === undefined) return fallback
    const n = Number(text)
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
      throw new Error(`--${name} ${text}: give a whole number; usage: ${USAGE}`)
    }
    return n
  }
  const options: KindOptions = {
    cases: number('cases', 1000),
    seed: number('seed', Math.floor(Math.random() * 2 ** 31)),
    from: number('from', 0),
    say
  }
  say(`fuzzing ${kinds.join(', ')}: ${options.cases} cases each from case ${options.from}, seed ${options.seed}`)
  const tallies: Array<FuzzTally | KindTally> = []
  let missing = false
  for (const kind of kinds as KindName[]) {
    const runner = await runnerOf(kind)
    if (typeof runner === 'string') {
      say(`${kind}: ${runner}`)
      missing = true
      continue
    }
    tallies.push(await runner(options))
  }
  say('')
  for (const tally of tallies) {
    say(`${tally.kind.padEnd(5)} ${summary(tally)}`)
    for (const note of (tally as Partial<KindTally>).notes ?? []) say(`      unclear: ${note}`)
    for (const line of (tally as Partial<KindTally>).overMemory ?? []) say(`      over 1 GB: ${line}`)
  }
  const findings = tallies.flatMap(tally => tally.findings)
  for (const finding of findings) {
    say(`FOUND ${finding.kind} ${finding.outcome} seed=${finding.seed} case=${finding.case}: ${finding.what}`)
    say(`  replay: npm run fuzz -- ${finding.kind} --seed ${finding.seed} --from ${finding.case} --cases 1`)
  }
  say(`seed ${options.seed}: ${findings.length === 0 ? 'no crash, hang or loss' : `${findings.length} finding(s)`}`)
  return findings.length > 0 ? 1 : missing ? 2 : 0
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2), line => {
      process.stdout.write(`${line}\n`)
    })
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`)
    process.exitCode = 2
  }
  // Child processes are killed by the test helpers' exit hook.
  process.exit()
}
