/**
 * `GET /api/peers`: the members connected now, each once, with the addresses of its open connections and
 * how it is reached: `direct`, or `relayed` through a member relay (named), since when.
 */
import { type Static, Type } from 'typebox'

export const ConnectedMember = Type.Object({
  peerId: Type.String(),
  name: Type.String(),
  role: Type.String(),
  subspecialties: Type.Array(Type.String()),
  addrs: Type.Array(Type.String()),
  /** `direct` while any connection to the member is direct; `relayed` when every one goes through a relay */
  link: Type.Union([Type.Literal('direct'), Type.Literal('relayed')]),
  /** the relay of a relayed link: its peer id, and its name when it is a known member */
  relay: Type.Optional(Type.Object({ peerId: Type.String(), name: Type.Optional(Type.String()) })),
  /** when the connection that gives `link` opened (ISO 8601) */
  since: Type.String(),
  /** the relay limits the link runs under (bytes left, seconds left), when it has any */
  limited: Type.Optional(Type.Object({ bytes: Type.Optional(Type.String()), seconds: Type.Optional(Type.Number()) }))
})
export type ConnectedMember = Static<typeof ConnectedMember>

export const ConnectedMembers = Type.Array(ConnectedMember)
export type ConnectedMembers = Static<typeof ConnectedMembers>
