/**
 * The study exchange over HTTP:
 * `POST /api/studies/:studyUid/share` `{ peerIds }`: wraps the study key for these members and announces it.
 * `POST /api/studies/:studyUid/fetch`: 202; the node fetches the study from whoever holds it.
 * `GET /api/studies/:studyUid/availability`: how much of the study is on this node, and how its fetch stands.
 */
import { type Static, Type } from 'typebox'
import { PeerId } from './common.ts'

/** The most members one share names. */
export const MAX_RECIPIENTS = 64

export const ShareBody = Type.Object({
  peerIds: Type.Array(PeerId, { minItems: 1, maxItems: MAX_RECIPIENTS })
})
export type ShareBody = Static<typeof ShareBody>

export const Shared = Type.Object({
  studyUid: Type.String(),
  /** the study version shared (a study that grew has a new one) */
  versionId: Type.String(),
  recipients: Type.Array(Type.Object({ peerId: Type.String(), announced: Type.Boolean() }))
})
export type Shared = Static<typeof Shared>

export const FETCH_STATES = ['idle', 'finding', 'fetching', 'complete', 'failed', 'stopped'] as const

export const Availability = Type.Object({
  instancesTotal: Type.Integer(),
  instancesLocal: Type.Integer(),
  bytesTotal: Type.Integer(),
  bytesLocal: Type.Integer(),
  complete: Type.Boolean(),
  state: Type.Enum([...FETCH_STATES]),
  /** why the last fetch failed */
  error: Type.Optional(Type.String()),
  /** the members chunks came from in this fetch, with their bytes */
  sources: Type.Optional(Type.Record(Type.String(), Type.Integer()))
})
export type Availability = Static<typeof Availability>
