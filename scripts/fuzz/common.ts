/**
 * What every fuzz kind shares: a real node process to attack (a site with its DICOM port, started through the
 * CLI like the tests' nodes), known-good instances stored first and their SHA-256 checked again and again, and
 * the loop that runs the cases and, after each, checks that the node is alive and that /api/health answers
 * within 1 s. A kind only says how to store its known-good set and how to run one case.
 *
 * Outcomes per case: accepted, refused (a clear refusal: a failure status, a 4xx with the documented error
 * body, an A-ASSOCIATE-RJ or A-ABORT), unclear (an answer that is neither: a 5xx, bytes that are not PDUs),
 * crashed (the node process died), hung (no answer in 5 s, or /api/health slower than 1 s), and, checked every
 * N cases and at the end, lost (an acknowledged instance gone or altered).
 *
 * The node itself is in ./target.ts, the instances that must survive in ./ledger.ts.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { PYDICOM_CORPUS } from '../lib/pydicom-corpus.ts'
import { tempDir } from '../lib/temp.ts'
import { generateCt } from '../generate-ct.ts'
import { type Part10, readPart10 } from './dataset.ts'
import { type InstanceRef, Ledger } from './ledger.ts'
import { Rng } from './rng.ts'
import { emptyTally, type FuzzFinding, type FuzzOptions, type FuzzTally } from './tally.ts'
import { messageOf, Target } from './target.ts'

/** RADMESH_FUZZ_TRACE=1 prints every case's outcome. */
const TRACE = process.env['RADMESH_FUZZ_TRACE'] === '1'
/** The node's RSS must stay under this throughout (issue 13); a case that takes it over is reported. */
export const RSS_LIMIT_MB = 1024

export interface KindOptions extends FuzzOptions {
  /** known-good instances are checked every this many cases (and at the end) */
  checkEvery?: number
}

export interface KindTally extends FuzzTally {
  /** answers that are neither a clear refusal nor an acceptance (a 5xx, bytes that are not PDUs) */
  unclear: number
  /** a line per unclear answer (at most 50), with its case */
  notes: string[]
  /** the node's highest RSS (VmHWM) over the run, MB */
  peakRssMb: number
  /** the cases that took the node's RSS over 1 GB, with the peak they reached */
  overMemory: string[]
  seconds: number
}

// ---------------------------------------------------------------------------------------------------
// Real inputs

export interface Sample extends Part10 {
  /** one of the known-good set (stored unchanged before the cases) */
  knownGood: boolean
}

/** A few corpus files that every node stores (known-good) besides the generated CT. */
const KNOWN_GOOD_CORPUS = [
  'CT_small.dcm',
  'MR_small.dcm',
  'JPEG2000.dcm',
  'MR_small_RLE.dcm',
  'rtplan.dcm',
  'SC_rgb_jpeg_dcmtk.dcm'
]

let samples: Promise<Sample[]> | undefined

/** The pydicom corpus (every .dcm file, broken ones too) and a generated CT series of 3 slices. */
export async function loadSamples(): Promise<Sample[]> {
  samples ??= (async () => {
    const names = (await fs.readdir(PYDICOM_CORPUS)).filter(name => name.endsWith('.dcm')).sort()
    const out: Sample[] = []
    for (const name of names) {
      const file = await fs.readFile(join(PYDICOM_CORPUS, name))
      out.push({ ...readPart10(name, file), knownGood: KNOWN_GOOD_CORPUS.includes(name) })
    }
    const dir = await tempDir('radmesh-fuzz-ct-')
    const ct = await generateCt({ out: dir, slices: 3, rows: 128, columns: 128, seed: 20_261_207 })
    for (const [i, path] of ct.files.entries()) {
      out.push({ ...readPart10(`generated CT slice ${i + 1}`, await fs.readFile(path)), knownGood: true })
    }
    return out
  })()
  return await samples
}

// ---------------------------------------------------------------------------------------------------
// The loop

export interface CaseResult {
  outcome: 'accepted' | 'refused' | 'unclear' | 'hung'
  /** the input, for a finding */
  what: string
  /** why it is unclear or hung */
  why?: string
  /** instances the node acknowledged (to open now and check later) */
  accepted?: InstanceRef[]
}

export interface Kind {
  name: string
  /** stores the known-good instances and records them in the ledger */
  setup(target: Target, ledger: Ledger, say: (line: string) => void): Promise<void>
  run(target: Target, rng: Rng, index: number): Promise<CaseResult>
}

/** Runs `options.cases` cases of a kind against a fresh node, checking it after each; the tally, findings included. */
export async function runKind(kind: Kind, options: KindOptions): Promise<KindTally> {
  const { say, seed } = options
  const from = options.from ?? 0
  const checkEvery = options.checkEvery ?? 50
  const started = performance.now()
  const tally: KindTally = { ...emptyTally(kind.name), unclear: 0, notes: [], peakRssMb: 0, overMemory: [], seconds: 0 }
  const elapsed = (): number => Math.round((performance.now() - started) / 100) / 10
  const target = await Target.start(say)
  const ledger = new Ledger()
  const found = (index: number, outcome: FuzzFinding['outcome'], what: string): void => {
    const finding: FuzzFinding = { kind: kind.name, seed, case: index, outcome, what }
    tally.findings.push(finding)
    say(`FOUND ${kind.name} ${outcome} seed=${seed} case=${index}: ${what}`)
    say(`  replay: npm run fuzz -- ${kind.name} --seed ${seed} --from ${index} --cases 1`)
  }
  const checkLosses = async (index: number, all: boolean): Promise<void> => {
    for (const what of await ledger.check(target, all)) {
      tally.lost++
      found(index, 'lost', `${what} (found after case ${index})`)
    }
  }
  try {
    await kind.setup(target, ledger, say)
    const last = from + options.cases - 1
    say(`${kind.name}: ${ledger.known.length} known-good instances stored; cases ${from} to ${last}, seed ${seed}`)
    for (let index = from; index < from + options.cases; index++) {
      tally.tried++
      let result: CaseResult
      let during: string | undefined
      try {
        const watched = await target.during(async () => await kind.run(target, new Rng(kind.name, seed, index), index))
        result = watched.result
        during = watched.why
      } catch (error) {
        result = { outcome: 'unclear', what: 'the case itself failed', why: messageOf(error) }
      }
      if (!target.alive) {
        tally.crashed++
        found(index, 'crashed', `${result.what} -> the node died: ${target.outputTail()}`)
        await target.restart()
        await checkLosses(index, true)
        continue
      }
      const health = await target.health()
      if (result.outcome === 'hung' || !health.ok || during !== undefined) {
        tally.hung++
        const why = result.outcome === 'hung' ? (result.why ?? 'no answer in 5 s') : (during ?? health.why)
        found(index, 'hung', `${result.what} -> ${why}`)
        await target.recover(say)
        if (!target.alive) await target.restart()
      } else if (result.outcome === 'unclear') {
        tally.unclear++
        const note = `case ${index}: ${(result.why ?? '?').slice(0, 160)} <- ${result.what.slice(0, 160)}`
        if (tally.notes.length < 50) tally.notes.push(note)
      } else {
        tally[result.outcome]++
        const why = result.why === undefined ? '' : ` (${result.why})`
        if (TRACE) say(`${kind.name} case ${index}: ${result.outcome}${why} <- ${result.what.slice(0, 200)}`)
      }
      // VmHWM only grows: the case that takes it over the limit is the one to replay. The node is started
      // again then, so the next case that does it is seen too.
      const peak = await target.sampleRss()
      if (peak > RSS_LIMIT_MB) {
        const line = `case ${index}: RSS peak ${Math.round(peak)} MB <- ${result.what.slice(0, 200)}`
        tally.overMemory.push(line)
        say(`OVER 1 GB ${kind.name} seed=${seed} ${line}`)
        await target.restart()
      }
      if ((index - from + 1) % checkEvery === 0) await checkLosses(index, false)
      if ((index - from + 1) % 500 === 0) {
        say(`${kind.name}: ${index - from + 1} cases, ${summary({ ...tally, seconds: elapsed() })}`)
      }
    }
    await checkLosses(from + options.cases - 1, true)
  } finally {
    await target.stop().catch(() => {})
    tally.peakRssMb = Math.round(target.peakRssMb)
    tally.seconds = elapsed()
  }
  return tally
}

export const summary = (t: FuzzTally & Partial<KindTally>): string =>
  `tried ${t.tried}, refused ${t.refused}, accepted ${t.accepted}, ` +
  `crashed ${t.crashed}, hung ${t.hung}, lost ${t.lost}` +
  (t.unclear === undefined ? '' : `, unclear ${t.unclear}`) +
  (t.overMemory === undefined ? '' : `; ${t.overMemory.length} case(s) took RSS over 1 GB`) +
  (t.peakRssMb === undefined || t.peakRssMb === 0 ? '' : `; peak RSS ${Math.round(t.peakRssMb)} MB`) +
  (t.seconds === undefined ? '' : `; ${t.seconds} s`)
