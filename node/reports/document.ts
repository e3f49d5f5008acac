/**
 * The report document's layout (PROTOCOL.md): one Y.Text per section, the `editors` map of bindings and the
 * `signatures` map, all root types; and what is read from it: the sections, the signatures, the FINAL one.
 */
import { createHash } from 'node:crypto'
import type * as Y from 'yjs'
import {
  EDITORS_MAP,
  type ReportRecord,
  type ReportSignatureRecord,
  SECTION_NAMES,
  type Sections,
  SIGNATURES_MAP
} from '../../protocol/collab/records.ts'
import { canonicalJson, type Json } from '../../protocol/json.ts'
import { changeBetween } from '../crdt/text-merge.ts'

/** SHA-256 (hex) of what a signature covers: the case, the study and the sections, canonically. */
export function reportHash(caseId: string, studyUid: string, sections: Sections): string {
  return createHash('sha256')
    .update(canonicalJson({ caseId, studyUid, sections } as unknown as Json))
    .digest('hex')
}

/** Declares the report's roots with their types, so peers' updates land in the right shapes. */
export function declareRoots(doc: Y.Doc): void {
  for (const name of SECTION_NAMES) doc.getText(name)
  doc.getMap(EDITORS_MAP)
  doc.getMap(SIGNATURES_MAP)
}

export function sectionsOf(doc: Y.Doc): Sections {
  const sections = {} as Sections
  for (const name of SECTION_NAMES) sections[name] = doc.getText(name).toString()
  return sections
}

export const signaturesOf = (doc: Y.Doc): ReportSignatureRecord[] =>
  [...doc.getMap<ReportRecord>(SIGNATURES_MAP).values()]
    .filter((r): r is ReportSignatureRecord => r.kind === 'report-signature')
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.signature < b.signature ? -1 : 1))

/**
 * The report's FINAL signature: the earliest by a reader of the case (a later one, made concurrently, only
 * co-signs).
 */
export function finalOf(doc: Y.Doc, editors: Set<string>): ReportSignatureRecord | undefined {
  return signaturesOf(doc).find(r => r.status === 'FINAL' && editors.has(r.by))
}

/** Replaces a Y.Text's content by `next` with the smallest edit (common prefix and suffix kept). */
export function replaceText(text: Y.Text, next: string): void {
  const current = text.toString()
  if (current === next) return
  const { start, end, insert } = changeBetween(current, next)
  if (end > start) text.delete(start, end - start)
  if (insert.length > 0) text.insert(start, insert)
}
