/**
 * Reports over HTTP. Every read and change is in the audit trail (110110 Patient Record).
 * `GET /api/cases/:caseId/report`
 * `PUT /api/cases/:caseId/report` `{ sections: { findings: "...", ... } }`: replaces these sections as one edit;
 *   with `base: { findings: "..." }` (the text it was written from) only that change is made, keeping what
 *   others wrote since, or 409 RADMESH_REPORT_CHANGED if they changed the same place
 * `POST /api/cases/:caseId/report/sign` `{ status: "PRELIMINARY" | "FINAL" }`
 * `POST /api/cases/:caseId/report/addendum` `{ text }`: after FINAL
 * `POST /api/cases/:caseId/consult` `{ peerId }`: invites a second reader (answers the case, as the worklist)
 * `GET /api/cases/:caseId/report/fhir`: the FINAL report as a FHIR R4 DiagnosticReport (the case's site)
 *
 * Live editing, for the viewer (a Yjs client of the report, whose only peer is its node):
 * `POST /api/cases/:caseId/report/live/binding` `{ clientId }`: the member's signed binding of that Yjs client
 * `GET /api/cases/:caseId/report/live`: Server-Sent Events `update` (base64 Yjs update; the first is the whole
 *   document), `view` (a ReportView, after changes), `awareness` (base64 y-protocols awareness update)
 * `POST /api/cases/:caseId/report/live` one Yjs update (application/octet-stream): 204
 * `POST /api/cases/:caseId/report/presence` one awareness update (application/octet-stream): 204
 */
import { type Static, Type } from 'typebox'
import { MAX_SECTION_CHARS, SECTION_NAMES, type SectionName } from '../collab/records.ts'
import { Nullable, PeerId } from './common.ts'

export const REPORT_STATUSES = ['DRAFT', 'PRELIMINARY', 'FINAL', 'AMENDED'] as const
export type ReportStatus = (typeof REPORT_STATUSES)[number]

const SectionText = Type.String({ maxLength: MAX_SECTION_CHARS })
/** The five sections, each present. */
export const Sections = Type.Object(
  Object.fromEntries(SECTION_NAMES.map(name => [name, SectionText])) as Record<SectionName, typeof SectionText>
)
/** Some of the five sections, and nothing else. */
export const SomeSections = Type.Partial(Sections, { additionalProperties: false })

export const ReportSignature = Type.Object({
  peerId: Type.String(),
  name: Type.String(),
  status: Type.Enum(['PRELIMINARY', 'FINAL', 'ADDENDUM']),
  at: Type.String(),
  /** SHA-256 (hex) of what the signature covers */
  reportHash: Type.String(),
  /** whether this node checked the Ed25519 signature */
  verified: Type.Boolean()
})

export const ReportView = Type.Object({
  caseId: Type.String(),
  studyInstanceUid: Type.String(),
  status: Type.Enum([...REPORT_STATUSES]),
  /** the live texts, or the FINAL signature's once there is one */
  sections: Sections,
  /** the members who wrote, in the order they first did */
  authors: Type.Array(Type.Object({ peerId: Type.String(), name: Type.String() })),
  signatures: Type.Array(ReportSignature),
  addenda: Type.Array(
    Type.Object({
      text: Type.String(),
      peerId: Type.String(),
      name: Type.String(),
      at: Type.String()
    })
  ),
  finalAt: Nullable(Type.String()),
  /** at the site, GET only: the report's messages to the site's RIS (HL7 ORU^R01), oldest first */
  delivery: Type.Optional(
    Type.Object({
      hl7: Type.Array(
        Type.Object({
          controlId: Type.String(),
          /** F a FINAL report, C one with an addendum, P a critical result told on its raise */
          resultStatus: Type.Enum(['F', 'C', 'P']),
          ris: Type.String(),
          state: Type.Enum(['pending', 'delivered', 'rejected']),
          attempts: Type.Integer(),
          createdAt: Type.String(),
          nextAttemptAt: Type.String(),
          lastError: Type.Optional(Type.String()),
          /** the RIS's last ACK: MSA-1 (AA, AE, AR), the reason it gave */
          ack: Type.Optional(Type.Object({ code: Type.String(), text: Type.String(), at: Type.String() }))
        })
      )
    })
  )
})
export type ReportView = Static<typeof ReportView>

export const EditBody = Type.Object({
  sections: SomeSections,
  /** for each section written, the text the new one was written from */
  base: Type.Optional(SomeSections)
})
export type EditBody = Static<typeof EditBody>

export const SignBody = Type.Object({ status: Type.Enum(['PRELIMINARY', 'FINAL']) })
export type SignBody = Static<typeof SignBody>

export const AddendumBody = Type.Object({ text: Type.String() })
export type AddendumBody = Static<typeof AddendumBody>

export const ConsultBody = Type.Object({ peerId: PeerId })
export type ConsultBody = Static<typeof ConsultBody>

/** A FHIR R4 DiagnosticReport (application/fhir+json): its fields are FHIR's, passed on whole. */
export const FhirDiagnosticReport = Type.Object(
  { resourceType: Type.Literal('DiagnosticReport') },
  { additionalProperties: true }
)
export type FhirDiagnosticReport = Static<typeof FhirDiagnosticReport>

/** A Yjs client id (the node refuses one that is not an unsigned 32-bit integer). */
export const BindingBody = Type.Object({ clientId: Type.Number() })
export type BindingBody = Static<typeof BindingBody>

/** "Yjs client N of this report is member R", signed by R: the viewer writes it into the report itself. */
export const Binding = Type.Object({
  v: Type.Integer(),
  kind: Type.Literal('binding'),
  caseId: Type.String(),
  clientId: Type.Integer(),
  by: Type.String(),
  at: Type.String(),
  signature: Type.String()
})
export type Binding = Static<typeof Binding>
