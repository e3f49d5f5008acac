/**
 * Misbehaviour counted per peer: malformed, oversized, truncated or stalled messages, data that does not
 * verify. A peer that reaches the threshold is disconnected and refused for a cool-down (the gater asks
 * `isBanned`); counts decay, so an old glitch is forgiven.
 *
 * Every refusal of something a member sent is logged with a stable code (`REFUSAL_CODES`, with what each
 * means and what it counts against the sender): tests, the fuzzer and an operator reading node.log all
 * key on the code, never on the message.
 */
import type { Logger } from 'pino'

export const PENALTY_THRESHOLD = 20
export const PENALTY_DECAY_MS = 10 * 60_000
export const BAN_MS = 5 * 60_000

/** Why a node refused what a member sent over a `/radmesh/*` protocol, and what it counts against the sender. */
export const REFUSAL_CODES = {
  /** bytes that do not decode as the protocol's message (not JSON, a field missing or of the wrong shape) */
  'malformed-message': 1,
  /** a message whose length prefix alone is over the protocol's limit, or over the stream's read buffer */
  'oversized-message': 1,
  /** the stream ended inside a message */
  'truncated-message': 1,
  /** a message started and not finished in time, or an answer the member did not read in time */
  'stalled-stream': 1,
  /** a manifest whose signature does not verify, of another consortium, or whose origin is not a member */
  'bad-manifest': 5,
  /** a manifest dated further in the future than clocks drift: it would outrank every honest version */
  'manifest-from-the-future': 2,
  /** a version of a study whose versions come from another origin (this node's own, or the one it follows) */
  'foreign-version': 2,
  /** a sealed index that does not open, or does not match its manifest (instances, sizes, chunk counts) */
  'bad-manifest-index': 5,
  /** a key wrap for this node, signed by a member, that does not open */
  'bad-key-wrap': 5,
  /** a chunk whose SHA-256 is not the manifest's */
  'corrupt-chunk': 5,
  /** a chunk frame for another chunk or offset than asked for, or more bytes than the chunk has */
  'bad-chunk-frame': 5,
  /** revocations whose signature does not verify against the consortium root */
  'invalid-revocation': 1,
  /** address records whose signature, or whose member's certificate, does not verify */
  'invalid-address-record': 1,
  /** a Yjs update that breaks the document's rules (weight set by the rule: 0 for an honest race) */
  'refused-update': 1,
  /** presence for a Yjs client not bound to the sender, or not a small JSON object */
  'refused-presence': 1
} as const satisfies Record<string, number>

export type RefusalCode = keyof typeof REFUSAL_CODES

export interface Refusal {
  peer: string
  protocol: string
  code: RefusalCode
  /** what it counts against the peer; the code's weight unless given */
  weight?: number
  /** the log line's event; "peer-refused" unless given */
  event?: string
  error: string
  /** more fields for the log line (a document, a study, a chunk) */
  detail?: Record<string, unknown>
}

/**
 * The refusal code of an error a peer's stream or message caused, or undefined when it is no fault of the
 * peer's (a link that dropped, the node stopping).
 */
export function refusalCodeOf(error: unknown): RefusalCode | undefined {
  switch ((error as Error | undefined)?.name) {
    case 'MalformedMessageError':
    case 'InvalidMessageLengthError':
      return 'malformed-message'
    case 'OversizedMessageError':
    case 'InvalidDataLengthError':
    case 'InvalidDataLengthLengthError':
    case 'ReadBufferOverflowError':
    case 'StreamBufferError':
      return 'oversized-message'
    case 'TruncatedMessageError':
    case 'UnexpectedEOFError':
      return 'truncated-message'
    case 'StalledStreamError':
    case 'TimeoutError':
      return 'stalled-stream'
    default:
      return undefined
  }
}

interface PenaltyRecord {
  score: number
  since: number
  reasons: Map<string, number>
  bannedUntil: number
}

export class PeerPenalties {
  private readonly records = new Map<string, PenaltyRecord>()
  private onBan: (peer: string, reasons: Record<string, number>) => void = () => {}

  /** Called once each time a peer is banned: the node disconnects it. */
  setBanHandler(handler: (peer: string, reasons: Record<string, number>) => void): void {
    this.onBan = handler
  }

  penalise(peer: string, reason: string, weight = 1, now = Date.now()): number {
    let record = this.records.get(peer)
    if (record === undefined || (now - record.since > PENALTY_DECAY_MS && record.bannedUntil <= now)) {
      record = { score: 0, since: now, reasons: new Map(), bannedUntil: 0 }
      this.records.set(peer, record)
    }
    record.score += weight
    record.reasons.set(reason, (record.reasons.get(reason) ?? 0) + weight)
    if (record.score >= PENALTY_THRESHOLD && record.bannedUntil <= now) {
      record.bannedUntil = now + BAN_MS
      this.onBan(peer, Object.fromEntries(record.reasons))
    }
    return record.score
  }

  /**
   * Logs the refusal (warn, with `event`, `code`, `protocol`, `peer`, `penalty`) and counts it against the
   * peer; returns the peer's score.
   */
  refuse(log: Logger, refusal: Refusal): number {
    const weight = refusal.weight ?? REFUSAL_CODES[refusal.code]
    const score = weight > 0 ? this.penalise(refusal.peer, refusal.code, weight) : this.scoreOf(refusal.peer)
    const { peer, protocol, code, error } = refusal
    const event = refusal.event ?? 'peer-refused'
    log.warn(
      { event, code, protocol, peer, penalty: weight, score, error, ...refusal.detail },
      `refused what ${peer} sent on ${protocol} (${code}): ${error}`
    )
    return score
  }

  isBanned(peer: string, now = Date.now()): boolean {
    return (this.records.get(peer)?.bannedUntil ?? 0) > now
  }

  scoreOf(peer: string): number {
    return this.records.get(peer)?.score ?? 0
  }
}
