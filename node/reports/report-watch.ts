/**
 * For the site's services that act on a case once its report is signed (delivery.ts into the archive and the
 * RIS, the second opinions joined back to their original case): a case is touched when its report document
 * changes or a worklist record of the kinds named arrives for it, and each touched case the service wants is
 * handed to its work in turn, one at a time, so two versions of one report are never handled at once.
 */
import type { Logger } from 'pino'
import type { WorklistRecord } from '../../protocol/collab/records.ts'
import { caseOfDoc } from '../../protocol/collab/sync.ts'
import type { Documents } from '../crdt/documents.ts'
import type { CaseSource } from './case.ts'

export interface ReportWatchOptions {
  documents: Pick<Documents, 'onUpdate'>
  worklist: Pick<CaseSource, 'onChange'>
  /** the worklist records that touch their case */
  kinds: ReadonlyArray<WorklistRecord['kind']>
  /** whether the service acts on this case at all (checked when it is touched) */
  wants: (caseId: string) => boolean
  work: (caseId: string) => Promise<void>
  /** what the log says when the work on a case fails */
  failure: string
  log: Logger
}

export class ReportWatch {
  private readonly o: ReportWatchOptions
  private readonly cleanups: Array<() => void> = []
  private queue: Promise<void> = Promise.resolve()

  constructor(options: ReportWatchOptions) {
    this.o = options
  }

  start(): void {
    const { documents, worklist, kinds } = this.o
    this.cleanups.push(
      documents.onUpdate(docId => {
        const caseId = caseOfDoc(docId)
        if (caseId !== undefined) this.touch(caseId)
      }),
      worklist.onChange(records => {
        for (const record of records) {
          if (kinds.includes(record.kind) && 'caseId' in record) this.touch(record.caseId)
        }
      })
    )
  }

  stop(): void {
    for (const cleanup of this.cleanups.splice(0)) cleanup()
  }

  /** Waits until the work on every case touched so far is done. */
  async settled(): Promise<void> {
    await this.queue
  }

  /** Queues the work on `caseId`, if the service wants it. */
  touch(caseId: string): void {
    if (!this.o.wants(caseId)) return
    this.queue = this.queue
      .then(async () => {
        await this.o.work(caseId)
      })
      .catch(error => {
        this.o.log.error({ err: error, case: caseId }, this.o.failure)
      })
  }
}
