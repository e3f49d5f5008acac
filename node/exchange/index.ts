/**
 * @packageDocumentation
 * The study exchange: sharing a study with readers (a signed version, a key wrap each, an announcement),
 * serving its encrypted chunks to any member, fetching studies from every member that holds them, and
 * checking everything peers send. Study versions, keys and wraps are kept in versions.ts; the wire formats
 * and stream limits are in protocol/exchange.
 */
export type { Availability, FetchState } from './availability.ts'
export { Exchange, type ExchangeComponents, type ExchangeInit } from './exchange.ts'
export type { StudyFetch } from './fetch.ts'
export type { ShareResult } from './share.ts'
export { type OpenVersion, StudyVersions } from './versions.ts'
