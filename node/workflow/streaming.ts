/**
 * STAT studies streamed during their acquisition (a site). A study's first instance is routed at once; when the
 * site's rules make it STAT, its case is published then, marked `acquiring`, and the study is shared with the
 * case's readers as it is. Every new instance after that is shared too, batched (growing.ts): a new version of
 * the study, announced to the readers, whose on-duty nodes fetch only the instances they lack. Once the study
 * is stable (`--stable-after`), its last instances are shared and the case is marked complete (`acquired`).
 *
 * ROUTINE and URGENT studies, de-identified copies, priors retrieved from the PACS, and studies whose case
 * existed before (a study that grows after it was stable) are left to the stable-study path, as before.
 * The case counts from its creation at the first instance: its due time is that plus the STAT due minutes.
 */
import type { Logger } from 'pino'
import type { Archive, StudyStableEvent } from '../archive/archive.ts'
import type { CaseState } from '../worklist/cases.ts'
import type { RoutingConfig } from '../worklist/routing.ts'
import type { Worklist } from '../worklist/worklist.ts'
import { GrowingShares } from './growing.ts'
import { routeStudy } from './study-route.ts'

export interface StatStreamingComponents {
  archive: Pick<Archive, 'study' | 'seriesOf' | 'rearmStable'>
  worklist: Pick<Worklist, 'ensureCase' | 'markAcquired' | 'liveCases'>
  routing: RoutingConfig
  log: Logger
  /** the case id of a study of this site */
  caseIdOf: (studyUid: string) => string
  /**
   * whether the study is not one the site's rules make a reading case of: a prior retrieved from the PACS (no
   * case), a de-identified copy this site made (a case of its own once stable)
   */
  notRouted: (studyUid: string) => Promise<boolean>
  /** publishes the case of a study, `acquiring`, sharing the study with its readers first */
  publish: (studyUid: string) => Promise<CaseState | undefined>
  /** shares the study's latest state with its case's readers (a new version when it grew) */
  share: (studyUid: string) => Promise<void>
}

export class StatStreaming {
  private readonly components: StatStreamingComponents
  private readonly shares: GrowingShares
  /** studies of this site seen growing since their last stable event: whether each is streamed */
  private readonly streamed = new Map<string, Promise<boolean>>()

  constructor(components: StatStreamingComponents, init: { minIntervalMs?: number } = {}) {
    this.components = components
    this.shares = new GrowingShares({
      share: components.share,
      log: components.log,
      ...(init.minIntervalMs === undefined ? {} : { minIntervalMs: init.minIntervalMs })
    })
  }

  /** A new instance of a study of this site was stored. */
  grew(studyUid: string): void {
    const known = this.streamed.get(studyUid)
    if (known !== undefined) {
      void known.then(streamed => {
        if (streamed) this.shares.grew(studyUid)
      })
      return
    }
    const deciding = this.decide(studyUid).catch((error: unknown) => {
      this.components.log.error(
        { err: error, study: studyUid },
        'could not route a study at its first instance; its case waits for the study to be stable'
      )
      return false
    })
    this.streamed.set(studyUid, deciding)
  }

  /**
   * The study is stable. A streamed one is shared a last time and its case marked complete (true); any other
   * is left to the caller (false).
   */
  async stable(event: StudyStableEvent): Promise<boolean> {
    const { worklist, caseIdOf, log } = this.components
    const { studyUid } = event
    const known = this.streamed.get(studyUid)
    this.streamed.delete(studyUid)
    if (known !== undefined) await known
    // Asked even with no decision in memory: a case published acquiring before this node restarted.
    const state = await worklist.ensureCase(caseIdOf(studyUid))
    if (state?.arriving !== true) return false
    await this.shares.flush(studyUid)
    await worklist.markAcquired(state.caseId, event.instanceCount)
    log.info(
      { event: 'case-acquired', case: state.caseId, study: studyUid, instances: event.instanceCount },
      `case ${state.caseId}: study complete (${event.instanceCount} instances)`
    )
    return true
  }

  /**
   * After a start: the studies of this site's cases still arriving wait `--stable-after` again (a study that
   * arrived whole before a restart is then marked complete; one still arriving goes on streaming).
   */
  resume(site: string): void {
    const { worklist, archive } = this.components
    for (const state of worklist.liveCases()) {
      if (state.site === site && state.arriving === true) archive.rearmStable(state.studyUid)
    }
  }

  stop(): void {
    this.shares.stop()
  }

  /** Whether a study seen growing is streamed: its case published now if it is STAT and has none yet. */
  private async decide(studyUid: string): Promise<boolean> {
    const { archive, worklist, routing, caseIdOf, notRouted, publish, log } = this.components
    const existing = await worklist.ensureCase(caseIdOf(studyUid))
    // A case published acquiring before this node restarted goes on streaming; any other case is left as it is.
    if (existing !== undefined) return existing.arriving === true
    const study = await archive.study(studyUid)
    if (study === undefined || (await notRouted(studyUid))) return false
    const { priority } = await routeStudy(archive, study, routing)
    if (priority !== 'STAT') return false
    const state = await publish(studyUid)
    if (state === undefined) return false
    log.info(
      { event: 'case-streamed', case: state.caseId, study: studyUid, instances: study.instanceCount },
      `case ${state.caseId} published at the study's first instance (STAT); its readers get it as it arrives`
    )
    // Instances that arrived while the case was published wait on this decision, then ask for a share.
    return state.arriving === true
  }
}
