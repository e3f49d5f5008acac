/**
 * Misbehaviour counted per peer: malformed or oversized messages, data that does not verify. A member
 * past the threshold is disconnected for a cool-down; counts decay so an old glitch is forgiven.
 * (The exchange issue will add corrupted chunks to what is counted here.)
 */
export const PENALTY_THRESHOLD = 20
export const PENALTY_DECAY_MS = 10 * 60_000

interface PenaltyRecord { score: number, since: number, reasons: Map<string, number> }

export class PeerPenalties {
  private readonly records = new Map<string, PenaltyRecord>()
  private readonly onThreshold: (peer: string) => void

  constructor (onThreshold: (peer: string) => void = () => {}) {
    this.onThreshold = onThreshold
  }

  penalise (peer: string, reason: string, weight = 1, now = Date.now()): number {
    let record = this.records.get(peer)
    if (record === undefined || now - record.since > PENALTY_DECAY_MS) {
      record = { score: 0, since: now, reasons: new Map() }
      this.records.set(peer, record)
    }
    record.score += weight
    record.reasons.set(reason, (record.reasons.get(reason) ?? 0) + weight)
    if (record.score >= PENALTY_THRESHOLD) this.onThreshold(peer)
    return record.score
  }

  scoreOf (peer: string): number {
    return this.records.get(peer)?.score ?? 0
  }

  snapshot (): Array<{ peer: string, score: number, reasons: Record<string, number> }> {
    return [...this.records].map(([peer, r]) => ({ peer, score: r.score, reasons: Object.fromEntries(r.reasons) }))
  }
}
