/**
 * What every route of the HTTP API shares: the error body (docs/ERRORS.md), the path parameters that name a
 * case or a study, and the building blocks of the other schemas. The schemas are JSON Schema (TypeBox): the
 * node validates requests and serialises answers with them, and the viewer uses their static types.
 */
import { type Static, type TSchema, Type } from 'typebox'

/** `{ "error": { "code", "message" } }`: the body of every refusal, whatever the route. */
export const ErrorBody = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() })
})
export type ErrorBody = Static<typeof ErrorBody>

/** The error answers every route may give, for its `response` schema. */
export const ERROR_RESPONSES = { '4xx': ErrorBody, '5xx': ErrorBody } as const

/** A value or null (JSON has no undefined). */
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

/** A DICOM UID (PS3.5 9.1): digits and dots, at most 64 characters. */
export const Uid = Type.String({ maxLength: 64, pattern: '^[0-9]+(\\.[0-9]+)*$' })
/** A case id: 24 hex digits (the start of the SHA-256 of the site and the study). */
export const CaseId = Type.String({ pattern: '^[0-9a-f]{24}$' })
/** A libp2p peer id as text. */
export const PeerId = Type.String({ minLength: 1, maxLength: 128 })
/** A time, ISO 8601. */
export const Time = Type.String()

export const CaseParams = Type.Object({ caseId: CaseId })
export type CaseParams = Static<typeof CaseParams>
export const StudyParams = Type.Object({ studyUid: Uid })
export type StudyParams = Static<typeof StudyParams>

/** No body, no query: what a route that takes none declares. */
export const Empty = Type.Object({}, { additionalProperties: false })
