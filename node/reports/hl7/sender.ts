/**
 * Sends the outbox to the site's RIS over MLLP (`@medplum/hl7`: VT message FS CR on one TCP connection), one
 * message at a time and in order (a RIS must see a report's F before its C), each time waiting for the ACK:
 *
 *   AA (or CA)         delivered
 *   AE, AR (CE, CR)    rejected: recorded, shown on the case, logged and audited, not sent again (the same
 *                      message would be refused again; the site fixes the RIS or the order and re-sends)
 *   no ACK in time,    attempted: the next attempt after a delay that doubles from `retryMs` up to
 *   no connection      `maxRetryMs`; the message stays in the outbox on disk meanwhile
 */
import { Hl7Message } from '@medplum/core'
import { Hl7Client } from '@medplum/hl7'
import type { Logger } from 'pino'
import type { AuditEntry } from '../../audit/log.ts'
import { isAccept, parseAck } from './oru.ts'
import type { Hl7Outbox, OutboxEntry } from './outbox.ts'

/** How long a RIS has to answer: an ACK comes in well under a second; a minute covers a RIS under load. */
export const ACK_TIMEOUT_MS = 30_000
/** How long a connection may take to open. */
export const CONNECT_TIMEOUT_MS = 10_000
/** The first retry; it doubles on each failure. */
export const RETRY_MS = 5_000
/** The longest wait between attempts: a RIS back after a day's outage gets its reports within minutes. */
export const MAX_RETRY_MS = 5 * 60_000

export interface RisAddress {
  host: string
  port: number
}

export interface Hl7SenderOptions {
  outbox: Hl7Outbox
  ris: RisAddress
  audit: { append: (entry: AuditEntry) => Promise<unknown> }
  /** this node: the actor of the audit records */
  peerId: string
  log: Logger
  retryMs?: number
  maxRetryMs?: number
  ackTimeoutMs?: number
}

/** The delay before attempt `attempts + 1`, after `attempts` failures: doubling from `first`, capped. */
export const backoff = (attempts: number, first: number, max: number): number =>
  Math.min(max, first * 2 ** Math.max(0, attempts - 1))

export class Hl7Sender {
  private readonly o: Hl7SenderOptions
  private readonly queue: OutboxEntry[] = []
  private client: Hl7Client | undefined
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private stopped = true

  constructor(options: Hl7SenderOptions) {
    this.o = options
  }

  get ris(): string {
    return `${this.o.ris.host}:${this.o.ris.port}`
  }

  /** Picks up what the outbox still owes (from before a restart) and starts sending. */
  async start(): Promise<void> {
    this.stopped = false
    this.queue.push(...(await this.o.outbox.pending()))
    this.kick()
  }

  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.running
    await this.disconnect()
  }

  /** Keeps `entry` (fsync'd) unless its report version is in the outbox already, and sends it in turn. */
  async enqueue(entry: Omit<OutboxEntry, 'state' | 'attempts' | 'createdAt' | 'nextAttemptAt' | 'ris'>): Promise<void> {
    if ((await this.o.outbox.get(entry.key)) !== undefined) return
    const now = new Date().toISOString()
    const full: OutboxEntry = {
      ...entry,
      ris: this.ris,
      state: 'pending',
      attempts: 0,
      createdAt: now,
      nextAttemptAt: now
    }
    await this.o.outbox.put(full)
    this.queue.push(full)
    this.kick()
  }

  /** Sends what is due now; sets a timer for the rest. */
  private kick(): void {
    if (this.stopped || this.running !== undefined) return
    clearTimeout(this.timer)
    this.running = this.drain()
      .catch(error => {
        this.o.log.error({ err: error }, 'the HL7 outbox stopped on an error; it resumes at the next report')
      })
      .finally(() => {
        this.running = undefined
        const head = this.queue[0]
        if (head !== undefined && !this.stopped) {
          const wait = Math.max(0, Date.parse(head.nextAttemptAt) - Date.now())
          this.timer = setTimeout(() => {
            this.kick()
          }, wait)
        }
      })
  }

  private async drain(): Promise<void> {
    for (let head = this.queue[0]; head !== undefined && !this.stopped; head = this.queue[0]) {
      if (Date.parse(head.nextAttemptAt) > Date.now()) break
      const done = await this.attempt(head)
      if (!done) break
      this.queue.shift()
    }
    if (this.queue.length === 0) await this.disconnect()
  }

  /** One attempt at the head of the queue; true when it left the queue (delivered or rejected). */
  private async attempt(entry: OutboxEntry): Promise<boolean> {
    const { log } = this.o
    const at = new Date().toISOString()
    entry.attempts++
    entry.lastAttemptAt = at
    let reply: string
    try {
      this.client ??= new Hl7Client({ ...this.o.ris, connectTimeout: CONNECT_TIMEOUT_MS })
      // The ACK's deadline is kept here, not by the client's `timeoutMs`, whose timer @medplum/hl7 leaves running
      // after the answer came: every message sent held the process up for its 30 s.
      const timeoutMs = this.o.ackTimeoutMs ?? ACK_TIMEOUT_MS
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no ACK within ${timeoutMs} ms`)), timeoutMs)
      })
      try {
        reply = (await Promise.race([this.client.sendAndWait(Hl7Message.parse(entry.message)), late])).toString()
      } finally {
        clearTimeout(timer)
      }
    } catch (error) {
      await this.disconnect()
      const wait = backoff(entry.attempts, this.o.retryMs ?? RETRY_MS, this.o.maxRetryMs ?? MAX_RETRY_MS)
      entry.lastError = (error as Error).message || String(error)
      entry.nextAttemptAt = new Date(Date.now() + wait).toISOString()
      await this.o.outbox.put(entry)
      log.warn(
        { event: 'hl7-retry', case: entry.caseId, ris: this.ris, attempts: entry.attempts, err: error },
        `the RIS at ${this.ris} did not acknowledge the report of case ${entry.caseId}; next attempt in ${wait} ms`
      )
      return false
    }
    const ack = parseAck(reply) ?? { code: 'AE', controlId: '', text: 'the answer had no MSA segment' }
    entry.ack = { code: ack.code, text: ack.text, at }
    entry.state = isAccept(ack.code) ? 'delivered' : 'rejected'
    delete entry.lastError
    await this.o.outbox.put(entry)
    const about = entry.resultStatus === 'P' ? 'critical result' : 'report'
    const what = `${about} of case ${entry.caseId} as HL7 ORU^R01 (${entry.resultStatus}) to the RIS at ${this.ris}`
    await this.o.audit.append({
      event: 'export',
      action: 'R',
      outcome: entry.state === 'delivered' ? 0 : 8,
      actor: { type: 'peer', id: this.o.peerId },
      study: entry.studyUid,
      detail: `${what}: ${ack.code}${ack.text === '' ? '' : ` ${ack.text}`}`
    })
    if (entry.state === 'delivered') {
      log.info({ event: 'hl7-delivered', case: entry.caseId, ris: this.ris, ack: ack.code }, `${what}: ${ack.code}`)
    } else {
      log.warn(
        { event: 'hl7-rejected', case: entry.caseId, ris: this.ris, ack: ack.code, reason: ack.text },
        `the RIS refused the ${what}: ${ack.code} ${ack.text}`
      )
    }
    return true
  }

  private async disconnect(): Promise<void> {
    const client = this.client
    this.client = undefined
    await client?.close().catch(() => {})
  }
}
