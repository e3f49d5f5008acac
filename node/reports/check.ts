/**
 * The check of a peer's update to a report (the rules are in reports.ts): tried on a copy of the document,
 * refused with UpdateRefusedError and the reason unless every new item is one those rules allow.
 */
import * as Y from 'yjs'
import {
  type BindingRecord,
  EDITORS_MAP,
  MAX_SECTION_CHARS,
  type ReportRecord,
  type ReportSignatureRecord,
  SECTION_NAMES,
  SIGNATURES_MAP
} from '../../protocol/collab/records.ts'
import { UpdateRefusedError } from '../crdt/inspect.ts'
import { editorsOf, type ReportCase } from './case.ts'
import { declareRoots, finalOf, sectionsOf } from './document.ts'
import { verifiedReportRecord } from './records.ts'

/**
 * Throws UpdateRefusedError unless `update` to the report of `state` (held here as `doc`) is allowed. The keys
 * of signatures it brings, checked on the way, are added to `verified`.
 */
export async function checkReportUpdate(
  state: ReportCase,
  doc: Y.Doc,
  update: Uint8Array,
  verified: Set<string>
): Promise<void> {
  const caseId = state.caseId
  const editors = new Set(editorsOf(state))

  const trial = new Y.Doc({ gc: false })
  declareRoots(trial)
  Y.applyUpdate(trial, Y.encodeStateAsUpdate(doc))
  const before = new Map([...trial.store.clients.keys()].map(client => [client, Y.getState(trial.store, client)]))
  const finalBefore = finalOf(trial, editors)
  const sectionsBefore = sectionsOf(trial)
  const editorsBefore = new Map(trial.getMap<BindingRecord>(EDITORS_MAP).entries())
  const signaturesBefore = new Map(trial.getMap<ReportSignatureRecord>(SIGNATURES_MAP).entries())
  Y.applyUpdate(trial, update)
  if (trial.store.pendingStructs !== null || trial.store.pendingDs !== null) {
    throw new UpdateRefusedError('the update builds on report updates this node does not have yet', 0)
  }

  const roots = new Map<unknown, string>([...trial.share].map(([name, type]) => [type, name]))
  const bindings = trial.getMap<unknown>(EDITORS_MAP)
  const newRecords: Array<{ root: string; key: string; client: number }> = []
  for (const [client, structs] of trial.store.clients) {
    const from = before.get(client) ?? 0
    if (Y.getState(trial.store, client) <= from) continue
    for (let i = Y.findIndexSS(structs, from); i < structs.length; i++) {
      const item = structs[i]
      if (!(item instanceof Y.Item)) {
        throw new UpdateRefusedError('the update holds garbage-collected structs, which a report never has', 5)
      }
      const root = roots.get(item.parent)
      if (root === undefined) {
        throw new UpdateRefusedError(
          'the update nests types in a report, which holds only its sections and two maps',
          5
        )
      }
      if ((SECTION_NAMES as readonly string[]).includes(root)) {
        const text = item.content instanceof Y.ContentString || item.content instanceof Y.ContentDeleted
        if (item.parentSub !== null || !text) {
          throw new UpdateRefusedError(`the update puts something other than text in section ${root}`, 5)
        }
        if (finalBefore !== undefined) {
          throw new UpdateRefusedError(
            `the update changes section ${root} of a FINAL report`,
            2,
            'RADMESH_REPORT_FINAL'
          )
        }
        const binding = bindings.get(String(client)) as BindingRecord | undefined
        if (binding === undefined) {
          throw new UpdateRefusedError(
            `section text from Yjs client ${client}, which no reader of the case has bound`,
            5
          )
        }
        if (!editors.has(binding.by)) {
          throw new UpdateRefusedError(`section text by ${binding.by}, who is not a reader of case ${caseId} (yet)`, 0)
        }
      } else if (root === EDITORS_MAP || root === SIGNATURES_MAP) {
        if (item.parentSub === null || !(item.content instanceof Y.ContentAny) || item.content.arr.length !== 1) {
          throw new UpdateRefusedError(`the update writes ${root} other than as one record per key`, 5)
        }
        if ((root === EDITORS_MAP ? editorsBefore : signaturesBefore).has(item.parentSub)) {
          throw new UpdateRefusedError(`the update overwrites ${root} entry ${item.parentSub}`, 5)
        }
        if (!item.deleted) newRecords.push({ root, key: item.parentSub, client })
      } else {
        throw new UpdateRefusedError(`the update writes "${root.slice(0, 40)}", which is not part of a report`, 5)
      }
    }
  }
  for (const { root, key, client } of newRecords) {
    const value = trial.getMap(root).get(key)
    let record: ReportRecord
    try {
      record = await verifiedReportRecord(key, value)
    } catch (error) {
      throw new UpdateRefusedError((error as Error).message, 5)
    }
    if (record.caseId !== caseId) {
      throw new UpdateRefusedError(`a ${record.kind} record of case ${record.caseId} in the report of ${caseId}`, 5)
    }
    if (!editors.has(record.by)) {
      throw new UpdateRefusedError(
        `a ${record.kind} record by ${record.by}, who is not a reader of case ` +
          `${caseId}${record.by === state.site ? ' (a site never signs or writes a ' + 'report)' : ''}`,
        record.by === state.site ? 5 : 0
      )
    }
    if (record.kind === 'binding') {
      if (record.clientId !== client) {
        throw new UpdateRefusedError(`binding of client ${record.clientId} written by client ${client}`, 5)
      }
    } else {
      const author = bindings.get(String(client)) as BindingRecord | undefined
      if (author?.by !== record.by) {
        throw new UpdateRefusedError(
          `a signature by ${record.by} written by another member's client: signing as ` + `someone else`,
          10
        )
      }
      if (record.studyUid !== state.studyUid) {
        throw new UpdateRefusedError(`a signature for study ${record.studyUid}, not the case's study`, 5)
      }
      verified.add(key)
    }
  }
  for (const [map, entries] of [
    [EDITORS_MAP, editorsBefore],
    [SIGNATURES_MAP, signaturesBefore]
  ] as const) {
    for (const key of entries.keys()) {
      if (!trial.getMap(map).has(key)) throw new UpdateRefusedError(`the update deletes ${map} entry ${key}`, 5)
    }
  }
  if (finalBefore !== undefined) {
    const after = sectionsOf(trial)
    for (const name of SECTION_NAMES) {
      if (after[name] !== sectionsBefore[name]) {
        throw new UpdateRefusedError(`the update changes section ${name} of a FINAL report`, 2, 'RADMESH_REPORT_FINAL')
      }
    }
  }
  for (const name of SECTION_NAMES) {
    if (trial.getText(name).length > MAX_SECTION_CHARS) {
      throw new UpdateRefusedError(`section ${name} would be longer than ${MAX_SECTION_CHARS} characters`, 1)
    }
  }
  trial.destroy()
}
