/**
 * The archive over the JSON API:
 * `POST /api/import` one Part 10 file as the body (application/dicom or application/octet-stream, streamed);
 * `GET /api/instances/:sop` where an instance is and what was stored.
 */
import { type Static, Type } from 'typebox'

export const Imported = Type.Object({
  /** 'duplicate': the same bytes were there already; 'kept-existing': other bytes with this SOP Instance UID were */
  outcome: Type.Enum(['stored', 'duplicate', 'kept-existing']),
  studyInstanceUid: Type.String(),
  seriesInstanceUid: Type.String(),
  sopInstanceUid: Type.String(),
  bytes: Type.Integer()
})
export type Imported = Static<typeof Imported>

/** Any text: what is not a stored instance's UID is answered 404. */
export const InstanceParams = Type.Object({ sop: Type.String() })

export const StoredInstance = Type.Object({
  studyInstanceUid: Type.String(),
  seriesInstanceUid: Type.String(),
  sopInstanceUid: Type.String(),
  sopClassUid: Type.String(),
  transferSyntaxUid: Type.String(),
  bytes: Type.Integer(),
  sha256: Type.String(),
  storedAt: Type.String()
})
export type StoredInstance = Static<typeof StoredInstance>
