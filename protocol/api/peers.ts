/** `GET /api/peers`: the members connected now, each once, with the addresses of its open connections. */
import { type Static, Type } from 'typebox'

export const ConnectedMember = Type.Object({
  peerId: Type.String(),
  name: Type.String(),
  role: Type.String(),
  subspecialties: Type.Array(Type.String()),
  addrs: Type.Array(Type.String())
})
export type ConnectedMember = Static<typeof ConnectedMember>

export const ConnectedMembers = Type.Array(ConnectedMember)
export type ConnectedMembers = Static<typeof ConnectedMembers>
