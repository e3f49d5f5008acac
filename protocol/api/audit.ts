/**
 * `GET /api/audit`: the audit trail, oldest first: the last `?limit=` records (1 to 100000, 1000 if not given)
 * and how many there are; with `?verify=1` (or `?verify`, `?verify=true`) the result of checking its chain.
 */
import { type Static, Type } from 'typebox'

export const DEFAULT_AUDIT_RECORDS = 1000
export const MAX_AUDIT_RECORDS = 100_000

export const AuditQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_AUDIT_RECORDS })),
  /** '', '1' and 'true' ask for the check; '0' and 'false' do not */
  verify: Type.Optional(Type.Enum(['', '1', 'true', '0', 'false']))
})
export type AuditQuery = Static<typeof AuditQuery>

export const AuditActor = Type.Object({
  /** 'ae' (a DICOM peer), 'api' (the API token), 'viewer' (a browser session), 'peer' (a member node), 'cli' */
  type: Type.Enum(['ae', 'api', 'viewer', 'peer', 'cli']),
  id: Type.String(),
  address: Type.Optional(Type.String())
})

/** One record of the hash-chained trail (DICOM event ids, PS3.15 A.5). */
export const AuditRecord = Type.Object({
  seq: Type.Integer(),
  time: Type.String(),
  /** the DCM code of the event: 110104, 110103, 110112, 110106, 110114, 110110 or 110109 */
  eventCode: Type.String(),
  event: Type.Enum([
    'instancesTransferred',
    'instancesAccessed',
    'query',
    'export',
    'userAuthentication',
    'patientRecord',
    'orderRecord'
  ]),
  /** PS3.15 A.5.1 EventActionCode */
  action: Type.Enum(['C', 'R', 'U', 'D', 'E']),
  /** PS3.15 A.5.1 EventOutcomeIndicator */
  outcome: Type.Enum([0, 4, 8, 12]),
  actor: AuditActor,
  study: Type.Optional(Type.String()),
  series: Type.Optional(Type.String()),
  instances: Type.Optional(Type.Array(Type.String())),
  detail: Type.Optional(Type.String()),
  /** a store's commit in the archive's pack log (`pack:offset`) */
  journal: Type.Optional(Type.String()),
  /** the hash of the record before (64 zeros for the first) */
  prev: Type.String(),
  hash: Type.String()
})
export type AuditRecord = Static<typeof AuditRecord>

export const AuditVerification = Type.Union([
  Type.Object({ ok: Type.Literal(true), records: Type.Integer() }),
  Type.Object({ ok: Type.Literal(false), records: Type.Integer(), brokenAt: Type.Integer(), problem: Type.String() })
])
export type AuditVerification = Static<typeof AuditVerification>

export const AuditTrail = Type.Object({
  /** records in the trail */
  total: Type.Integer(),
  records: Type.Array(AuditRecord),
  verify: Type.Optional(AuditVerification)
})
export type AuditTrail = Static<typeof AuditTrail>
