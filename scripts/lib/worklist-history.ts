/**
 * A site's worklist history, made through radmesh's own record, document and index code: `count` cases of
 * which `openFraction` are still open (SCHEDULED) and the rest closed as a reader closes them (a claim, then a
 * FINAL signature), dated over the past `days`. Written straight into the stopped site's HOME, so a benchmark
 * or a test has a year of cases in seconds, without DICOM (the cases name made-up study UIDs).
 *
 * Every record is signed by its real author: the site's key for the cases, a reader's for its claims and
 * signatures (the readers' HOMEs are read for their keys). Closed cases end more than a week before now, so
 * they are not live, and their documents are at rest, as a site that retired them keeps them.
 */
import { join } from 'node:path'
import * as Y from 'yjs'
import { recordKey, type WorklistRecord } from '../../protocol/collab/records.ts'
import { caseDocId, MEMBERS_DOC } from '../../protocol/collab/sync.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import { StorageKey } from '../../node/archive/sealing.ts'
import { CaseIndex, isLive } from '../../node/worklist/case-index.ts'
import { deriveCases } from '../../node/worklist/cases.ts'
import { DocStore } from '../../node/crdt/store.ts'
import { RECORDS_MAP, signWorklistRecord } from '../../node/worklist/records.ts'
import { caseIdFor } from '../../node/workflow/workflow.ts'
import { loadMember, type Member } from '../../node/identity/member.ts'
import { openDatabase } from '../../node/store/database.ts'

export interface HistoryOptions {
  /** the site's HOME (its node stopped) */
  site: string
  /** readers' HOMEs: the cases name them all; closed ones were claimed and signed by one of them, in turn */
  readers: string[]
  count: number
  /** of the cases, this share is open (default 0.2) */
  openFraction?: number
  /** closed cases are spread over this many days before the last week (default 365) */
  days?: number
  /** called every 1000 cases */
  progress?: (done: number) => void
}

export interface History {
  open: number
  closed: number
  caseIds: string[]
  openIds: string[]
}

const DAY = 24 * 3600_000

export async function writeWorklistHistory(options: HistoryOptions): Promise<History> {
  const site = await loadMember(options.site)
  const readers: Member[] = []
  for (const home of options.readers) readers.push(await loadMember(home))
  const readerIds = readers.map(r => r.identity.peerId).sort() as PeerIdString[]
  const key = await StorageKey.load(join(options.site, 'storage.key'))
  const db = await openDatabase(site.paths.database)
  const store = new DocStore(db, key)
  const index = new CaseIndex(db, key)
  const now = Date.now()
  const openCount = Math.round(options.count * (options.openFraction ?? 0.2))
  const days = options.days ?? 365
  const history: History = { open: 0, closed: 0, caseIds: [], openIds: [] }
  try {
    // The readers' certificates in the members document, as their nodes publish them.
    const members = new Y.Doc()
    for (const reader of readers) {
      const record: WorklistRecord = { kind: 'member', certificate: reader.certificate }
      members.getMap(RECORDS_MAP).set(recordKey(record), record)
    }
    await store.append(MEMBERS_DOC, Y.encodeStateAsUpdate(members), false)

    for (let i = 0; i < options.count; i++) {
      const open = i >= options.count - openCount
      // Closed cases: spread over `days`, ending a week and a day before now; open ones: the last day.
      const created = open
        ? now - Math.floor((i % 1000) * 60_000)
        : now - 8 * DAY - Math.floor(((options.count - i) / options.count) * days * DAY)
      const createdAt = new Date(created).toISOString()
      const studyUid = `2.25.${now}${String(i).padStart(8, '0')}`
      const caseId = caseIdFor(site.identity.peerId, studyUid)
      const records: WorklistRecord[] = [
        await signWorklistRecord(site.identity.privateKey, {
          v: 1,
          kind: 'case',
          caseId,
          studyUid,
          site: site.identity.peerId,
          siteName: site.certificate.name,
          // No STAT: a reader on duty prefetches a STAT case's study, and these cases have none to fetch.
          priority: i % 3 === 0 ? 'URGENT' : 'ROUTINE',
          subspecialty: 'general',
          modalities: ['CT'],
          bodyPart: 'HEAD',
          readers: readerIds,
          createdAt,
          dueAt: new Date(created + DAY).toISOString(),
          by: site.identity.peerId,
          at: createdAt
        })
      ]
      if (!open) {
        const reader = readers[i % readers.length] as Member
        const by = reader.identity.peerId
        const claimedAt = new Date(created + 10 * 60_000).toISOString()
        const finalAt = new Date(created + 40 * 60_000).toISOString()
        records.push(
          await signWorklistRecord(reader.identity.privateKey, {
            v: 1,
            kind: 'claim',
            caseId,
            seq: 1,
            by,
            at: claimedAt
          })
        )
        records.push(
          await signWorklistRecord(reader.identity.privateKey, {
            v: 1,
            kind: 'signed',
            caseId,
            status: 'FINAL',
            reportHash: '0'.repeat(64),
            by,
            at: finalAt
          })
        )
      }
      const doc = new Y.Doc()
      doc.transact(() => {
        for (const record of records) doc.getMap(RECORDS_MAP).set(recordKey(record), record)
      })
      await store.append(caseDocId(caseId), Y.encodeStateAsUpdate(doc), false)
      const state = deriveCases(records).get(caseId)
      if (state === undefined) throw new Error(`generated case ${caseId} does not derive`)
      const changedAt = records.at(-1)?.kind === 'member' ? createdAt : (records.at(-1) as { at: string }).at
      const live = isLive(state, changedAt, now)
      index.put(state, changedAt, live)
      // A site lets go of a case that is no longer live: its document is moved at rest (crdt/store.ts).
      if (!live) await store.putAtRest(caseDocId(caseId))
      history.caseIds.push(caseId)
      if (open) {
        history.open++
        history.openIds.push(caseId)
      } else {
        history.closed++
      }
      if ((i + 1) % 1000 === 0) {
        await index.flushed()
        options.progress?.(i + 1)
      }
    }
    await index.flushed()
  } finally {
    await db.close()
  }
  return history
}
