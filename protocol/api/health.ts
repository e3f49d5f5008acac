/** `GET /api/health`: open to all (no token), for load balancers and monitors. */
import { type Static, Type } from 'typebox'

export const Health = Type.Object({
  /** whether the node's libp2p host is running */
  ok: Type.Boolean(),
  peerId: Type.String(),
  name: Type.String(),
  role: Type.String()
})
export type Health = Static<typeof Health>
