/**
 * The node a fuzz kind attacks: a real site process with its DICOM port, started through the CLI like the
 * tests' nodes, asked over HTTP with its token (every answer read within 5 s, or counted as none), its
 * /api/health watched while a case runs, its peak RSS sampled, and restarted when it dies or stops answering.
 */
import { promises as fs } from 'node:fs'
import { createScratchConsortium } from '../lib/consortium.ts'
import { type StartedNode, startNode } from '../lib/node-process.ts'

/** A case waits this long for its answer. */
export const ANSWER_MS = 5_000
/** /api/health must answer within this. */
export const HEALTH_MS = 1_000
/** A node that does not answer its health check within this after a hang is killed and started again. */
const RECOVERY_MS = 60_000

export type HttpAnswer =
  | { kind: 'answer'; status: number; body: Buffer; contentType: string; ms: number }
  | { kind: 'timeout'; ms: number }
  | { kind: 'failed'; message: string; ms: number }

/** Bodies are read up to this many bytes (frames of a planted instance could be anything). */
const MAX_BODY = 64 * 1024 * 1024

export class Target {
  node: StartedNode
  readonly home: string
  peakRssMb = 0

  private constructor(node: StartedNode, home: string) {
    this.node = node
    this.home = home
  }

  static async start(say: (line: string) => void): Promise<Target> {
    const consortium = await createScratchConsortium('Fuzz Consortium')
    const home = await consortium.member('Fuzzed Site', 'site')
    const node = await startNode(home, { dicom: true })
    say(`node started: http ${node.http}, dicom ${node.dicomPort}, home ${home}`)
    return new Target(node, home)
  }

  get alive(): boolean {
    return this.node.process.exitCode === null && this.node.process.signalCode === null
  }

  /** The end of what the node printed (a fatal error says why it died). */
  outputTail(): string {
    const lines = this.node.output().trim().split('\n')
    const fatal = lines.findIndex(line => /FATAL|Error|error:|RangeError|heap out of memory/.test(line))
    return (fatal >= 0 ? lines.slice(fatal, fatal + 4) : lines.slice(-3)).join(' | ').slice(0, 400)
  }

  /** The node process's peak RSS so far (VmHWM), MB; kept over restarts in `peakRssMb`. */
  async sampleRss(): Promise<number> {
    const status = await fs.readFile(`/proc/${this.node.process.pid}/status`, 'utf8').catch(() => '')
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
    this.peakRssMb = Math.max(this.peakRssMb, hwm)
    return hwm
  }

  async restart(): Promise<void> {
    if (this.alive) await this.sampleRss()
    if (this.alive) await this.node.kill()
    this.node = await startNode(this.home, { dicom: true })
  }

  async stop(): Promise<void> {
    await this.sampleRss()
    await this.node.kill()
  }

  /** An HTTP request with the node's token, answered (body read) within `timeoutMs`, or not. */
  async request(path: string, init: RequestInit = {}, timeoutMs = ANSWER_MS): Promise<HttpAnswer> {
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

  async health(): Promise<{ ok: boolean; ms: number; why?: string }> {
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
  async during<T>(work: () => Promise<T>): Promise<{ result: T; slowestHealthMs: number; why?: string }> {
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
  async recover(say: (line: string) => void): Promise<void> {
    const deadline = Date.now() + RECOVERY_MS
    while (Date.now() < deadline && this.alive) {
      if ((await this.health()).ok) return
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    say(this.alive ? 'the node did not recover within 60 s: restarting it' : 'the node died: restarting it')
    await this.restart()
  }
}

async function readCapped(response: Response): Promise<Buffer> {
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
  const e = error as { message?: string; cause?: { code?: string; message?: string } }
  return `${e.message ?? String(error)}${e.cause?.code !== undefined ? ` (${e.cause.code})` : ''}`
}

/** The one part of a WADO-RS multipart/related answer of a single instance. */
export function singlePart(answer: HttpAnswer): Buffer | undefined {
  if (answer.kind !== 'answer' || answer.status !== 200) return undefined
  const boundary = /boundary="?([^";]+)"?/i.exec(answer.contentType)?.[1]
  if (boundary === undefined) return undefined
  const body = answer.body
  const start = body.indexOf('\r\n\r\n', body.indexOf(`--${boundary}`))
  const end = body.lastIndexOf(`\r\n--${boundary}--`)
  if (start < 0 || end < start) return undefined
  return body.subarray(start + 4, end)
}
