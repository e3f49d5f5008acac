/**
 * The p2p fuzzer (`npm run fuzz -- p2p`): a real site process holding a small shared study, with a case on
 * its worklist whose report is FINAL, and malicious members in this process (radmesh's own libp2p host,
 * each with a real certificate, so they pass the handshake). Case by case, a member takes a valid message
 * of one of the `/radmesh/*` protocols (built with the protocol/ encoders, or captured from the site's own
 * traffic), mutates it with a generator seeded from (seed, case) (bit flips, truncation, length prefixes
 * set huge, fields set huge or of the wrong type, duplication, replay, reordering, oversize, stall) and
 * sends it. Each case is one of:
 *
 *   refused   the site reset the stream, gave an error answer, or logged a refusal code for the member
 *   accepted  taken as valid (a mutation can leave a message valid), or held back without a penalty (it may
 *             be an honest race), or, for a stream left stalled, not refused within the 150 ms the case waits
 *   crashed   the site process is gone (it is restarted, and the run goes on)
 *   hung      no end of the stream in 5 s, /api/health slower than 1 s, a well-behaved member's request
 *             unanswered, or a stream stalled midway that the site has not ended 5 s past its protocol's
 *             time limit (one such stream is kept open and watched at a time)
 *   lost      an instance of the study missing or altered through WADO-RS, or the case or its FINAL report
 *             changed (valid records may add: an addendum adds its SR to the study)
 *
 * A member the site bans is replaced by another: first the case's readers admitted at the start (they are
 * editors of its report, so report rules get tried), then members admitted on the spot.
 *
 * The site and its checks are in ./p2p-site.ts; the valid messages in ./p2p-messages.ts, their mutations in
 * ./p2p-mutate.ts.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { Stream } from '@libp2p/interface'
import { REFUSAL_CODES } from '../../node/p2p/penalties.ts'
import { SYNC_PROTOCOL } from '../../protocol/collab/sync.ts'
import { MANIFEST_PROTOCOL } from '../../protocol/exchange/messages.ts'
import { BadMember, type Exchanged } from '../lib/bad-member.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { p2pAddr, startNode } from '../lib/node-process.ts'
import { tempDir } from '../lib/temp.ts'
import { errorAnswer, generator, type Protocol, validMessages } from './p2p-messages.ts'
import { mutate, STALL_LIMIT_MS } from './p2p-mutate.ts'
import { ANSWER_MS, latestManifest, setUp, whatWasLost, wholeMessage } from './p2p-site.ts'
import { emptyTally, type FuzzFinding, type FuzzOptions, type FuzzTally } from './tally.ts'

export interface P2pFuzzOptions extends FuzzOptions {
  /** the first case's index: `from: N, cases: 1` replays case N of the seed */
  from?: number
}

/** What a p2p run reports besides the common tally. */
export interface P2pFuzzTally extends FuzzTally {
  /** the site's peak resident memory over the run (VmHWM) */
  peakRssMb: number
  /** members admitted over the run (a banned member is replaced) */
  identities: number
  /** said when the site's memory went over 1 GB */
  overMemory: string[]
}

/** The site's memory must stay under this throughout (issue 13). */
const MAX_RSS_MB = 1024

/** RADMESH_FUZZ_TRACE=1 prints every case's outcome. */
const TRACE = process.env['RADMESH_FUZZ_TRACE'] === '1'
const HEALTH_MS = 1_000
/** A stalled message is left hanging this long, then the stream is reset. */
const STALL_MS = 150
/** Every so many cases, a valid request and the whole study and report are checked. */
const CHECK_EVERY = 25

// The run

async function peakRssMb(pid: number | undefined): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
}

/** Refusal codes logged for a peer since an offset of node.log, and the new offset. */
interface Logged {
  codes: string[]
  offset: number
}

async function refusalsSince(home: string, offset: number, peer: string): Promise<Logged> {
  const handle = await fs.open(join(home, 'node.log'), 'r')
  try {
    const { size } = await handle.stat()
    if (size <= offset) return { codes: [], offset }
    const buffer = Buffer.alloc(size - offset)
    await handle.read(buffer, 0, buffer.byteLength, offset)
    const end = buffer.lastIndexOf(0x0a) + 1
    const codes: string[] = []
    for (const line of buffer.subarray(0, end).toString('utf8').split('\n')) {
      if (!line.includes(peer) || !line.includes('"code"')) continue
      try {
        const { code, peer: who } = JSON.parse(line) as { code?: unknown; peer?: unknown }
        const refusal = typeof code === 'string' && (code in REFUSAL_CODES || code === 'sync-read-overflow')
        if (who === peer && refusal) codes.push(code)
      } catch {}
    }
    return { codes, offset: offset + end }
  } finally {
    await handle.close()
  }
}

function summary(tally: P2pFuzzTally): string {
  const { refused, accepted, crashed, hung, lost, identities } = tally
  return (
    `refused ${refused}, accepted ${accepted}, crashed ${crashed}, hung ${hung}, lost ${lost}; ` +
    `${identities} members admitted after bans; site peak RSS ${Math.round(tally.peakRssMb)} MB`
  )
}

export async function runP2pFuzz(options: P2pFuzzOptions): Promise<P2pFuzzTally> {
  const { seed, say } = options
  const first = options.from ?? 0
  const tally: P2pFuzzTally = { ...emptyTally('p2p'), peakRssMb: 0, identities: 0, overMemory: [] }
  const consortium = await createScratchConsortium('P2P Fuzz')
  const site = await setUp(consortium, say)
  const work = await tempDir('radmesh-fuzz-members-')
  const spare = [...site.readers]
  let member: BadMember | undefined
  const replays: Uint8Array[] = []
  const finding = (index: number, outcome: FuzzFinding['outcome'], what: string): void => {
    tally[outcome]++
    tally.findings.push({ kind: 'p2p', seed, case: index, outcome, what })
    say(`p2p seed ${seed} case ${index}: ${outcome}: ${what}`)
  }
  const siteUp = (): boolean => site.node.process.exitCode === null && site.node.process.signalCode === null
  const restart = async (): Promise<void> => {
    const { dicomPort, p2pPort, wsPort, httpPort } = site.node
    await site.node.kill()
    const extraArgs = ['--stable-after', '1s']
    site.node = await startNode(site.home, { dicom: dicomPort, p2pPort, wsPort, httpPort, extraArgs })
    site.logOffset = (await fs.stat(join(site.home, 'node.log'))).size
    await site.prober.connect(p2pAddr(site.node)).catch(() => {})
  }
  /** A member connected to the site: the last one, or a reader of the case, or one admitted now. */
  const connectedMember = async (): Promise<BadMember> => {
    if (member?.connected() === true) return member
    // Banned (or the site restarted): its host goes, so its streams and keys do not pile up here.
    await member?.stop()
    member = undefined
    for (let attempt = 0; attempt < 5; attempt++) {
      let next = spare.shift()
      if (next === undefined) {
        const name = `Dr Fuzz ${++tally.identities}`
        next = await BadMember.admit(consortium.dir, work, { name, role: 'radiologist' })
      }
      try {
        await next.connect(p2pAddr(site.node), 5_000)
        if (next.connected()) {
          member = next
          return next
        }
      } catch {}
      await next.stop()
    }
    throw new Error('no member could connect to the site')
  }
  const health = async (): Promise<number> => {
    const started = performance.now()
    try {
      await fetch(`${site.node.http}/api/health`, { signal: AbortSignal.timeout(ANSWER_MS) })
    } catch {
      return Infinity
    }
    return performance.now() - started
  }
  const check = async (index: number): Promise<void> => {
    if (!site.prober.connected()) await site.prober.connect(p2pAddr(site.node)).catch(() => {})
    const latest = await latestManifest(site.prober, site.studyUid).catch(() => undefined)
    if (latest === undefined) finding(index, 'hung', "a well-behaved member's manifest request was not answered")
    else site.manifest = latest
    const lost = await whatWasLost(site).catch((error: unknown) => `the checks failed: ${(error as Error).message}`)
    if (lost !== '') finding(index, 'lost', lost)
    const peak = await peakRssMb(site.node.process.pid)
    const crossed = peak > MAX_RSS_MB && tally.peakRssMb <= MAX_RSS_MB
    if (crossed) tally.overMemory.push(`by case ${index}: ${Math.round(peak)} MB`)
    tally.peakRssMb = Math.max(tally.peakRssMb, peak)
  }

  // One stream stalled midway is kept open at a time, and must be ended by the site within its time limit.
  let watch: { stream: Stream; limitMs: number; since: number; index: number; what: string } | undefined
  const watchStall = (final = false): void => {
    if (watch === undefined) return
    const age = performance.now() - watch.since
    if (watch.stream.status !== 'open') {
      watch = undefined
    } else if (age > watch.limitMs + 5_000) {
      const seconds = Math.round(age / 1000)
      finding(watch.index, 'hung', `${watch.what}: stalled, open ${seconds} s on (limit ${watch.limitMs / 1000} s)`)
      watch.stream.abort(new Error('done'))
      watch = undefined
    } else if (final) {
      watch.stream.abort(new Error('done'))
      watch = undefined
    }
  }

  const started = performance.now()
  try {
    for (let index = first; index < first + options.cases; index++) {
      watchStall()
      const random = generator(seed, index)
      let outcome: Exchanged | undefined
      let what = ''
      let current: BadMember | undefined
      let protocol: Protocol = MANIFEST_PROTOCOL
      try {
        current = await connectedMember()
        const valid = await validMessages(site, current, random)
        protocol = valid.protocol
        const mutated = mutate(valid, random, replays)
        what = `${valid.name} on ${valid.protocol}, ${mutated.name}`
        replays.push(...valid.messages.filter(message => message.byteLength < 64 * 1024))
        if (replays.length > 64) replays.splice(0, replays.length - 64)
        const keepOpen = mutated.midway === true && watch === undefined
        outcome = await current.send(valid.protocol, mutated.chunks, {
          keepOpen,
          close: !mutated.stall,
          waitMs: mutated.stall ? STALL_MS : ANSWER_MS,
          gapMs: mutated.name === 'split' ? 2 : 0,
          // An answer (a manifest's, an announcement's, the first chunk frame) is one whole message.
          enough: wholeMessage
        })
        if (keepOpen && outcome.stream !== undefined) {
          const limitMs = STALL_LIMIT_MS[valid.protocol]
          watch = { stream: outcome.stream, limitMs, since: performance.now(), index, what }
        }
        if (!mutated.stall && outcome.ended === 'open' && outcome.reply.byteLength === 0 && !outcome.sendFailed) {
          finding(index, 'hung', `${what}: the stream neither answered nor ended in ${ANSWER_MS / 1000} s`)
        }
      } catch (error) {
        what = `${what} (${(error as Error).message})`
        if (siteUp() && current === undefined) finding(index, 'hung', `no member connects: ${(error as Error).message}`)
      }
      tally.tried++
      if (!siteUp()) {
        const { exitCode, signalCode } = site.node.process
        finding(index, 'crashed', `${what}: exit ${exitCode ?? signalCode}\n${site.node.output().slice(-2_000)}`)
        await restart()
        continue
      }
      const ms = await health()
      if (ms > HEALTH_MS) finding(index, 'hung', `${what}: /api/health took ${Math.min(Math.round(ms), ANSWER_MS)}+ ms`)
      // Refusal lines are written as the stream is reset; the log is a stream of its own, give it a moment.
      await new Promise(resolve => setTimeout(resolve, protocol === SYNC_PROTOCOL ? 20 : 5))
      const logged: Logged =
        current === undefined
          ? { codes: [], offset: site.logOffset }
          : await refusalsSince(site.home, site.logOffset, current.peerId)
      site.logOffset = logged.offset
      const refused =
        outcome === undefined ||
        outcome.ended === 'reset' ||
        outcome.sendFailed ||
        logged.codes.length > 0 ||
        errorAnswer(protocol, outcome.reply)
      if (refused) tally.refused++
      else tally.accepted++
      if (TRACE) say(`case ${index}: ${refused ? 'refused' : 'accepted'} ${what}: ${outcome?.ended} ${logged.codes}`)
      if ((index + 1) % CHECK_EVERY === 0 || index === first + options.cases - 1) await check(index)
      if ((index + 1 - first) % 500 === 0) {
        const seconds = Math.round((performance.now() - started) / 1000)
        say(`p2p: ${index + 1 - first} cases in ${seconds} s; ${summary(tally)}`)
      }
    }
  } finally {
    watchStall(true)
    const left = [site.prober, ...site.readers, ...(member === undefined ? [] : [member])]
    await Promise.all(
      left.map(async m => {
        await m.stop()
      })
    )
    await site.node.kill()
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1)
  say(`p2p: ${tally.tried} cases (seed ${seed}) in ${seconds} s: ${summary(tally)}`)
  return tally
}
