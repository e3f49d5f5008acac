/**
 * Branded identifiers: strings that must never be mixed up with one another.
 * A brand costs nothing at run time; it only stops `studyUid` being passed where a `peerId` belongs.
 */
export type PeerIdString = string & { readonly __brand: 'PeerIdString' }
export type ConsortiumId = string & { readonly __brand: 'ConsortiumId' }

export const asPeerIdString = (value: string): PeerIdString => value as PeerIdString
export const asConsortiumId = (value: string): ConsortiumId => value as ConsortiumId

/** The two kinds of member. A site sends studies; a radiologist reads them. */
export const ROLES = ['site', 'radiologist'] as const
export type Role = (typeof ROLES)[number]
export const isRole = (value: unknown): value is Role => value === 'site' || value === 'radiologist'
