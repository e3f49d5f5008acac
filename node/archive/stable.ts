/**
 * Study-stable events: a study with no new instance for `stableAfterMs` is taken to be whole (a modality
 * sends a study as a burst), and its listeners are told (the workflow opens a case for it). Study-grew
 * events: every new instance of a study, as it is stored (the workflow streams a STAT study as it arrives).
 */
import type { Logger } from 'pino'
import type { StudyRecord } from './records.ts'

export interface StudyStableEvent {
  studyUid: string
  instanceCount: number
  seriesCount: number
  bytes: number
}

export interface StableStudiesComponents {
  records: { study(studyUid: string): Promise<StudyRecord | undefined> }
  log: Logger
}

export class StableStudies {
  private readonly components: StableStudiesComponents
  private readonly stableAfterMs: number
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly listeners = new Set<(event: StudyStableEvent) => void>()
  private readonly growth = new Set<(studyUid: string) => void>()

  constructor(components: StableStudiesComponents, init: { stableAfterMs: number }) {
    this.components = components
    this.stableAfterMs = init.stableAfterMs
  }

  /** A study got a new instance: its event is due `stableAfterMs` from now. */
  touch(studyUid: string): void {
    for (const listener of this.growth) listener(studyUid)
    this.rearm(studyUid)
  }

  /**
   * The study's event is due `stableAfterMs` from now, with no new instance: a site that restarted while a study
   * was still arriving waits for it to be stable again (the timers are not kept across a restart).
   */
  rearm(studyUid: string): void {
    const { records, log } = this.components
    clearTimeout(this.timers.get(studyUid))
    const timer = setTimeout(() => {
      this.timers.delete(studyUid)
      void records
        .study(studyUid)
        .then(study => {
          if (study === undefined) return
          const { instanceCount, seriesCount, bytes } = study
          const event: StudyStableEvent = { studyUid, instanceCount, seriesCount, bytes }
          const detail = { study: studyUid, instances: instanceCount, series: seriesCount }
          log.info({ event: 'study-stable', ...detail }, 'study stable')
          for (const listener of this.listeners) listener(event)
        })
        .catch((error: unknown) => {
          log.error({ err: error, study: studyUid }, 'study-stable check failed')
        })
    }, this.stableAfterMs)
    timer.unref()
    this.timers.set(studyUid, timer)
  }

  /** Calls `listener` when a study has had no new instance for `stableAfterMs`; returns the unsubscribe. */
  on(listener: (event: StudyStableEvent) => void): () => void {
    this.listeners.add(listener)
    return () => {
      this.listeners.delete(listener)
    }
  }

  /** Calls `listener` with a study's UID each time a new instance of it is stored; returns the unsubscribe. */
  onGrew(listener: (studyUid: string) => void): () => void {
    this.growth.add(listener)
    return () => {
      this.growth.delete(listener)
    }
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer)
    this.timers.clear()
  }
}
