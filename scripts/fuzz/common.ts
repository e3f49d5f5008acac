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
 */
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { PYDICOM_CORPUS } from '../lib/pydicom-corpus.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { type StartedNode, startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { generateCt } from '../generate-ct.ts'
import { type Part10, readPart10, Rng } from './mutate.ts'
import { emptyTally, type FuzzFinding, type FuzzOptions, type FuzzTally } from './tally.ts'

/** A case waits this long for its answer. */
export const ANSWER_MS = 5_000
/** /api/health must answer within this. */
export const HEALTH_MS = 1_000
/** RADMESH_FUZZ_TRACE=1 prints every case's outcome. */
const TRACE = process.env['RADMESH_FUZZ_TRACE'] === '1'
/** The node's RSS must stay under this throughout (issue 13); a case that takes it over is reported. */
export const RSS_LIMIT_MB = 1024
/** A node that does not answer its health check within this after a hang is killed and started again. */
const RECOVERY_MS = 60_000

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
// The node under attack

export type HttpAnswer =
  | { kind: 'answer', status: number, body: Buffer, contentType: string, ms: number }
  | { kind: 'timeout', ms: number }
  | { kind: 'failed', message: string, ms: number }

/** Bodies are read up to this many bytes (frames of a planted instance could be anything). */
const MAX_BODY = 64 * 1024 * 1024

export class Target {
  node: StartedNode
  readonly home: string
  peakRssMb = 0

  private constructor (node: StartedNode, home: string) {
    this.node = node
    this.home = home
  }

  static async start (say: (line: string) => void): Promise<Target> {
    const consortium = await createScratchConsortium('Fuzz Consortium')
    const home = await consortium.member('Fuzzed Site', 'site')
    const node = await startNode(home, { dicom: true })
    say(`node started: http ${node.http}, dicom ${node.dicomPort}, home ${home}`)
    return new Target(node, home)
  }

  get alive (): boolean { return this.node.process.exitCode === null && this.node.process.signalCode === null }

  /** The end of what the node printed (a fatal error says why it died). */
  outputTail (): string {
    const lines = this.node.output().trim().split('\n')
    const fatal = lines.findIndex(line => /FATAL|Error|error:|RangeError|heap out of memory/.test(line))
    return (fatal >= 0 ? lines.slice(fatal, fatal + 4) : lines.slice(-3)).join(' | ').slice(0, 400)
  }

  /** The node process's peak RSS so far (VmHWM), MB; kept over restarts in `peakRssMb`. */
  async sampleRss (): Promise<number> {
    const status = await fs.readFile(`/proc/${this.node.process.pid}/status`, 'utf8').catch(() => '')
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
    this.peakRssMb = Math.max(this.peakRssMb, hwm)
    return hwm
  }

  async restart (): Promise<void> {
    if (this.alive) await this.sampleRss()
    if (this.alive) await this.node.kill()
    this.node = await startNode(this.home, { dicom: true })
  }

  async stop (): Promise<void> {
    await this.sampleRss()
    await this.node.kill()
  }

  /** An HTTP request with the node's token, answered (body read) within `timeoutMs`, or not. */
  async request (path: string, init: RequestInit = {}, timeoutMs = ANSWER_MS): Promise<HttpAnswer> {
    const started = performance.now()
    const signal = AbortSignal.timeout(timeoutMs)
    try {
      const response = await fetch(`${this.node.http}${path}`, {
        ...init,
        signal,
        headers: { authorization: `Bearer ${this.node.token}`, ...(init.headers as Record<string, string> | undefined) }
      })
      const body = await readCapped(response)
      const contentType = response.headers.get('content-type') ?? ''
      return { kind: 'answer', status: response.status, body, contentType, ms: performance.now() - started }
    } catch (error) {
      const ms = performance.now() - started
      if (signal.aborted) return { kind: 'timeout', ms }
      return { kind: 'failed', message: messageOf(error), ms }
    }
  }

  async health (): Promise<{ ok: boolean, ms: number, why?: string }> {
    const started = performance.now()
    try {
      const response = await fetch(`${this.node.http}/api/health`, { signal: AbortSignal.timeout(HEALTH_MS * 5) })
      await response.arrayBuffer()
      const ms = performance.now() - started
      if (response.status !== 200) return { ok: false, ms, why: `/api/health answered ${response.status}` }
      return ms > HEALTH_MS ? { ok: false, ms, why: `/api/health took ${ms.toFixed(0)} ms` } : { ok: true, ms }
    } catch (error) {
      return { ok: false, ms: performance.now() - started, why: `/api/health failed: ${messageOf(error)}` }
    }
  }

  /**
   * Runs `work` while /api/health is asked every 200 ms: the slowest answer (a probe still waiting when the work
   * ends counts for as long as it has waited) shows a stalled event loop even when the case's own answer came.
   */
  async during<T> (work: () => Promise<T>): Promise<{ result: T, slowestHealthMs: number, why?: string }> {
    let running = true
    let slowest = 0
    let why: string | undefined
    let inFlightSince: number | undefined
    let wake = (): void => {}
    const probe = (async () => {
      while (running) {
        inFlightSince = performance.now()
        const health = await this.health()
        inFlightSince = undefined
        if (health.ms > slowest) slowest = health.ms
        if (!health.ok && why === undefined) why = health.why
        if (!running) break
        await new Promise<void>(resolve => {
          const timer = setTimeout(resolve, 200)
          wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
      }
    })()
    try {
      const result = await work()
      if (inFlightSince !== undefined) slowest = Math.max(slowest, performance.now() - inFlightSince)
      if (slowest > HEALTH_MS) why ??= `/api/health took ${slowest.toFixed(0)} ms during the case`
      return { result, slowestHealthMs: slowest, ...(why === undefined ? {} : { why }) }
    } finally {
      running = false
      wake()
      await probe
    }
  }

  /** Waits for the node to answer its health check again; kills and restarts it if it does not. */
  async recover (say: (line: string) => void): Promise<void> {
    const deadline = Date.now() + RECOVERY_MS
    while (Date.now() < deadline && this.alive) {
      if ((await this.health()).ok) return
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    say(this.alive ? 'the node did not recover within 60 s: restarting it' : 'the node died: restarting it')
    await this.restart()
  }
}

async function readCapped (response: Response): Promise<Buffer> {
  if (response.body === null) return Buffer.alloc(0)
  const parts: Buffer[] = []
  let length = 0
  const reader = response.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    length += value.byteLength
    if (length > MAX_BODY) {
      await reader.cancel()
      break
    }
    parts.push(Buffer.from(value))
  }
  return Buffer.concat(parts)
}

export const messageOf = (error: unknown): string => {
  const e = error as { message?: string, cause?: { code?: string, message?: string } }
  return `${e.message ?? String(error)}${e.cause?.code !== undefined ? ` (${e.cause.code})` : ''}`
}

/** The one part of a WADO-RS multipart/related answer of a single instance. */
export function singlePart (answer: HttpAnswer): Buffer | undefined {
  if (answer.kind !== 'answer' || answer.status !== 200) return undefined
  const boundary = /boundary="?([^";]+)"?/i.exec(answer.contentType)?.[1]
  if (boundary === undefined) return undefined
  const body = answer.body
  const start = body.indexOf('\r\n\r\n', body.indexOf(`--${boundary}`))
  const end = body.lastIndexOf(`\r\n--${boundary}--`)
  if (start < 0 || end < start) return undefined
  return body.subarray(start + 4, end)
}

// ---------------------------------------------------------------------------------------------------
// Instances that must survive

export interface InstanceRef { study: string, series: string, sop: string }
interface Recorded extends InstanceRef { name: string, sha256: string }

export const instancePath = ({ study, series, sop }: InstanceRef): string =>
  `/dicom-web/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(series)}` +
  `/instances/${encodeURIComponent(sop)}`

const ACCEPT_DICOM = { accept: 'multipart/related; type="application/dicom"' }
const ACCEPT_JSON = { accept: 'application/dicom+json' }
const ACCEPT_FRAMES = { accept: 'multipart/related; type="application/octet-stream"' }

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** Acknowledged instances and the SHA-256 of what WADO-RS gave for them; checked again later. */
export class Ledger {
  readonly known: Recorded[] = []
  readonly accepted: Recorded[] = []
  readonly #reported = new Set<string>()
  static readonly MAX_TRACKED = 2_000

  /** Retrieves an instance and records its hash; undefined when it cannot be retrieved. */
  async record (target: Target, ref: InstanceRef, name: string, known: boolean): Promise<Recorded | undefined> {
    const bytes = singlePart(await target.request(instancePath(ref), { headers: ACCEPT_DICOM }))
    if (bytes === undefined) return undefined
    const entry = { ...ref, name, sha256: sha256(bytes) }
    if (known) this.known.push(entry)
    else if (this.accepted.length < Ledger.MAX_TRACKED) this.accepted.push(entry)
    return entry
  }

  /** What is gone or altered now (each instance reported once). */
  async check (target: Target, all: boolean): Promise<string[]> {
    const lost: string[] = []
    for (const entry of all ? [...this.known, ...this.accepted] : this.known) {
      if (this.#reported.has(entry.sop)) continue
      const answer = await target.request(instancePath(entry), { headers: ACCEPT_DICOM }, 30_000)
      const bytes = singlePart(answer)
      const why = bytes === undefined
        ? `gone (${answer.kind === 'answer' ? `HTTP ${answer.status}` : answer.kind})`
        : sha256(bytes) !== entry.sha256 ? 'altered (SHA-256 differs)' : undefined
      if (why === undefined) continue
      this.#reported.add(entry.sop)
      lost.push(`${entry.name} (SOP ${entry.sop}) ${why}`)
    }
    return lost
  }
}

// ---------------------------------------------------------------------------------------------------
// Real inputs

export interface Sample extends Part10 {
  /** one of the known-good set (stored unchanged before the cases) */
  knownGood: boolean
}

/** A few corpus files that every node stores (known-good) besides the generated CT. */
const KNOWN_GOOD_CORPUS = ['CT_small.dcm', 'MR_small.dcm', 'JPEG2000.dcm', 'MR_small_RLE.dcm', 'rtplan.dcm',
  'SC_rgb_jpeg_dcmtk.dcm']

let samples: Promise<Sample[]> | undefined

/** The pydicom corpus (every .dcm file, broken ones too) and a generated CT series of 3 slices. */
export async function loadSamples (): Promise<Sample[]> {
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
  setup (target: Target, ledger: Ledger, say: (line: string) => void): Promise<void>
  run (target: Target, rng: Rng, index: number): Promise<CaseResult>
}

/**
 * Opens what a case made the node acknowledge, as a viewer would: metadata, the frames and bulk data its
 * metadata points to. Each must answer within 5 s; a 5xx is unclear. Then records it for the loss checks.
 */
export async function openAccepted (target: Target, ledger: Ledger, refs: InstanceRef[], name: string):
Promise<{ hung?: string, unclear?: string }> {
  for (const ref of refs) {
    const path = instancePath(ref)
    const metadata = await target.request(`${path}/metadata`, { headers: ACCEPT_JSON })
    if (metadata.kind === 'timeout') return { hung: `GET ${path}/metadata: no answer in 5 s` }
    if (metadata.kind === 'failed') return { unclear: `GET …/metadata failed: ${metadata.message}` }
    if (metadata.status >= 500) return { unclear: `GET …/metadata answered ${metadata.status}` }
    const studyPath = `/dicom-web/studies/${encodeURIComponent(ref.study)}/metadata`
    const study = await target.request(studyPath, { headers: ACCEPT_JSON })
    if (study.kind === 'timeout') return { hung: 'GET study metadata: no answer in 5 s' }
    if (study.kind === 'answer' && study.status >= 500) {
      return { unclear: `GET study metadata answered ${study.status}` }
    }
    const uris = metadata.status === 200 ? bulkUris(metadata.body).slice(0, 4) : []
    if (metadata.status === 200 && uris.length === 0) uris.push(`${target.node.http}${path}/frames/1`)
    for (const uri of uris) {
      const relative = uri.replace(/^https?:\/\/[^/]+/, '')
      const frames = await target.request(relative, { headers: ACCEPT_FRAMES })
      if (frames.kind === 'timeout') return { hung: `GET ${relative.slice(0, 120)}: no answer in 5 s` }
      if (frames.kind === 'answer' && frames.status >= 500) {
        return { unclear: `GET …${relative.slice(-40)} answered ${frames.status}` }
      }
    }
    await ledger.record(target, ref, name, false)
  }
  return {}
}

/** Every BulkDataURI in a DICOM JSON answer (the frames first). */
function bulkUris (body: Buffer): string[] {
  const uris: string[] = []
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item)
    } else if (value !== null && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'BulkDataURI' && typeof inner === 'string') uris.push(inner)
        else visit(inner)
      }
    }
  }
  try {
    visit(JSON.parse(body.toString('utf8')))
  } catch {}
  return uris.sort((a, b) => Number(b.includes('/frames/')) - Number(a.includes('/frames/')))
}

/** Runs `options.cases` cases of a kind against a fresh node, checking it after each; the tally, findings included. */
export async function runKind (kind: Kind, options: KindOptions): Promise<KindTally> {
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
        const why = result.outcome === 'hung' ? result.why ?? 'no answer in 5 s' : during ?? health.why
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
