/**
 * Re-sharing a study that grows while its case is open (a STAT study streamed to its readers during the
 * acquisition): each new instance asks for a share, and the shares are batched so that a modality sending 10
 * slices a second does not make 10 versions and 10 announcements a second.
 *
 * - **One at a time, per study.** A share that is asked for while one runs waits for it, then covers every
 *   instance that arrived meanwhile (it publishes one version of the whole study as it is then).
 * - **Cost bounded.** Publishing a version reads and encrypts the whole study so far, and its manifest lists
 *   every chunk, so a version costs more as the study grows. A share begins at least `minIntervalMs` after the
 *   one before began, and at least `costFactor` times as long as that one took after it ended: publishing takes
 *   at most 1 / (1 + costFactor) of the time (a quarter by default) however large the study, and announcements
 *   (a manifest each, to each reader) come at most once a second.
 * - **Flush.** When the study is stable the last share runs at once (after any running one), so the last
 *   instances are announced before the case is marked complete.
 */
import type { Logger } from 'pino'

/** The least time between the starts of two shares of one growing study. */
export const MIN_SHARE_INTERVAL_MS = 1_000
/** After a share that took t, the next waits at least this times t: publishing takes at most a quarter of the time. */
export const SHARE_COST_FACTOR = 3

export interface GrowingSharesInit {
  /** shares the study's latest state with its case's readers (publishes a version when it grew) */
  share: (studyUid: string) => Promise<void>
  log: Logger
  minIntervalMs?: number
  costFactor?: number
  /** the clock, ms (performance.now unless given) */
  now?: () => number
}

interface Growing {
  /** a share is running */
  running: Promise<void> | undefined
  /** instances arrived that no share has covered yet */
  pending: boolean
  timer: NodeJS.Timeout | undefined
  /** when the last share began, and when the next may begin */
  startedAt: number
  nextAt: number
}

export class GrowingShares {
  private readonly init: GrowingSharesInit
  private readonly minIntervalMs: number
  private readonly costFactor: number
  private readonly now: () => number
  private readonly studies = new Map<string, Growing>()
  private stopped = false
  /** shares run, for the logs and tests */
  shares = 0

  constructor(init: GrowingSharesInit) {
    this.init = init
    this.minIntervalMs = init.minIntervalMs ?? MIN_SHARE_INTERVAL_MS
    this.costFactor = init.costFactor ?? SHARE_COST_FACTOR
    this.now = init.now ?? (() => performance.now())
  }

  /** A new instance of a growing study: a share covers it, at once or when the bound allows. */
  grew(studyUid: string): void {
    if (this.stopped) return
    const study = this.studyOf(studyUid)
    study.pending = true
    this.schedule(studyUid, study)
  }

  /** The study is stable: shares once more (after any running share) unless every instance is shared. */
  async flush(studyUid: string): Promise<void> {
    const study = this.studies.get(studyUid)
    if (study === undefined) return
    clearTimeout(study.timer)
    study.timer = undefined
    while (study.running !== undefined) await study.running
    if (study.pending && !this.stopped) await this.run(studyUid, study)
    this.studies.delete(studyUid)
  }

  stop(): void {
    this.stopped = true
    for (const study of this.studies.values()) clearTimeout(study.timer)
    this.studies.clear()
  }

  private studyOf(studyUid: string): Growing {
    let study = this.studies.get(studyUid)
    if (study === undefined) {
      study = { running: undefined, pending: false, timer: undefined, startedAt: 0, nextAt: 0 }
      this.studies.set(studyUid, study)
    }
    return study
  }

  private schedule(studyUid: string, study: Growing): void {
    if (study.running !== undefined || study.timer !== undefined || !study.pending) return
    const wait = Math.max(0, study.nextAt - this.now())
    study.timer = setTimeout(() => {
      study.timer = undefined
      if (this.studies.get(studyUid) === study && study.running === undefined && study.pending) {
        void this.run(studyUid, study)
      }
    }, wait)
    study.timer.unref()
  }

  private async run(studyUid: string, study: Growing): Promise<void> {
    study.pending = false
    study.startedAt = this.now()
    this.shares++
    const running = this.init
      .share(studyUid)
      .catch((error: unknown) => {
        // The instances stay pending: the next share (or the stable study's) covers them.
        study.pending = true
        this.init.log.warn(
          { event: 'growing-share-failed', study: studyUid, error: (error as Error).message },
          `could not share the new instances of study ${studyUid} now: ${(error as Error).message}`
        )
      })
      .finally(() => {
        const took = this.now() - study.startedAt
        study.nextAt = Math.max(study.startedAt + this.minIntervalMs, this.now() + this.costFactor * took)
        study.running = undefined
        if (!this.stopped && this.studies.get(studyUid) === study) this.schedule(studyUid, study)
      })
    study.running = running
    await running
  }
}
