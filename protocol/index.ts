/**
 * @packageDocumentation
 * radmesh's wire formats: every protocol id, message, codec and limit that nodes (and the viewer) share.
 * Nothing here does I/O or imports Node built-ins; `node/` and `viewer/` build on it. See PROTOCOL.md.
 */
export * from './errors.ts'
export * from './ids.ts'
export * from './membership/index.ts'
