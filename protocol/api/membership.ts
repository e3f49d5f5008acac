/**
 * `GET /api/membership`: this node's consortium, its certificate and the revocations it holds.
 * `POST /api/membership/revocations`: revocations signed by the administrator (one, as its file holds it, or a
 * list), which the node verifies, stores and spreads; answers the revoked peer ids it did not have yet.
 */
import { type Static, Type } from 'typebox'

/** The most revocations one request hands over. */
export const MAX_SUBMITTED_REVOCATIONS = 4096

export const ConsortiumInfo = Type.Object({
  v: Type.Integer(),
  id: Type.String(),
  name: Type.String(),
  rootPublicKey: Type.String(),
  createdAt: Type.String()
})

export const MemberCertificate = Type.Object({
  v: Type.Integer(),
  consortiumId: Type.String(),
  peerId: Type.String(),
  name: Type.String(),
  role: Type.Enum(['site', 'radiologist']),
  subspecialties: Type.Array(Type.String()),
  wrapKey: Type.String(),
  issuedAt: Type.String(),
  expiresAt: Type.String(),
  signature: Type.String()
})

export const Revocation = Type.Object({
  v: Type.Integer(),
  consortiumId: Type.String(),
  peerId: Type.String(),
  revokedAt: Type.String(),
  reason: Type.Optional(Type.String()),
  signature: Type.String()
})

export const Membership = Type.Object({
  consortium: ConsortiumInfo,
  certificate: MemberCertificate,
  revocations: Type.Array(Revocation)
})
export type Membership = Static<typeof Membership>

/** Checked field by field by the revocation decoder (protocol/membership), which names what is wrong. */
const SubmittedRevocation = Type.Object({})
export const RevocationsBody = Type.Union([
  Type.Array(SubmittedRevocation, { maxItems: MAX_SUBMITTED_REVOCATIONS }),
  SubmittedRevocation
])
export type RevocationsBody = Static<typeof RevocationsBody>

export const RevocationsAdded = Type.Object({
  /** the peer ids newly revoked */
  added: Type.Array(Type.String()),
  /** how many were not signed by this consortium's root */
  invalid: Type.Integer()
})
export type RevocationsAdded = Static<typeof RevocationsAdded>
