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
  /** `webrtc` when the link that gives `link` is a WebRTC one (UDP, hole punched through both NATs) */
  transport: Type.Optional(Type.Literal('webrtc')),
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

/**
 * `GET /api/reach`: how members can reach this node. radmesh does not run AutoNAT (see
 * node/p2p/direct-upgrade.ts): the evidence is the last member that dialled this node directly, and the
 * relays it holds a reservation on.
 */
export const Reach = Type.Object({
  /** `direct`: a member has dialled this node directly since it started; `relays-only`: none has, but it
   * holds relay reservations; `unknown`: neither yet */
  reachable: Type.Union([Type.Literal('direct'), Type.Literal('relays-only'), Type.Literal('unknown')]),
  /** the last member that dialled in directly, and when (ISO 8601) */
  dialledIn: Type.Optional(Type.Object({ peerId: Type.String(), name: Type.String(), at: Type.String() })),
  /** the addresses of this node's current signed address record */
  addrs: Type.Array(Type.String()),
  /** those of them outside private ranges and not through a relay */
  publicAddrs: Type.Array(Type.String()),
  /** member relays this node holds a reservation on */
  relays: Type.Array(Type.Object({ peerId: Type.String(), name: Type.Optional(Type.String()) })),
  /** reservations this node keeps (`--relay-reservations`, or its default) */
  reservationsWanted: Type.Number()
})
export type Reach = Static<typeof Reach>
