/**
 * What the HTTP layer knows of the node beyond the slice of a capability each plugin takes: who this node is.
 * Every plugin declares its own options (`XxxRoutesOptions`), each a `Pick` of the capabilities it calls, so a
 * test builds a plugin with fakes of just those; server.ts hands each plugin its slice.
 */
import type { MemberCertificate } from '../../protocol/membership/index.ts'

export type { ConnectedMember } from '../../protocol/api/peers.ts'

/** This node: its peer id and its consortium certificate (name, role, subspecialties). */
export interface Self {
  peerId: string
  certificate: MemberCertificate
}
