/**
 * Misbehaviour counted per peer: malformed or oversized messages, data that does not verify. A peer that
 * reaches the threshold is disconnected and refused for a cool-down (the gater asks `isBanned`); counts
 * decay, so an old glitch is forgiven. (The exchange issue adds corrupted chunks to what is counted.)
 */
export const PENALTY_THRESHOLD = 20
export const PENALTY_DECAY_MS = 10 * 60_000
export const BAN_MS = 5 * 60_000

interface PenaltyRecord { score: number, since: number, reasons: Map<string, number>, bannedUntil: number }

export class PeerPenalties {
  private readonly records = new Map<string, PenaltyRecord>()
  private onBan: (peer: string, reasons: Record<string, number>) => void = () => {}

  /** Called once each time a peer is banned: the node disconnects it. */
  setBanHandler (handler: (peer: string, reasons: Record<string, number>) => void): void {
    this.onBan = handler
  }

  penalise (peer: string, reason: string, weight = 1, now = Date.now()): number {
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

  isBanned (peer: string, now = Date.now()): boolean {
    return (this.records.get(peer)?.bannedUntil ?? 0) > now
  }

  scoreOf (peer: string): number {
    return this.records.get(peer)?.score ?? 0
  }
}
