/**
 * @packageDocumentation
 * The node's HTTP API as JSON Schema (TypeBox): what each route takes (body, path, query) and answers. The node
 * validates requests and serialises answers with these schemas (node/http), and the viewer and the CLI use
 * their static types, so the two sides cannot drift apart. Errors are `ErrorBody` (docs/ERRORS.md).
 */
export * from './archive.ts'
export * from './audit.ts'
export * from './common.ts'
export * from './critical.ts'
export * from './dicomweb.ts'
export * from './health.ts'
export * from './membership.ts'
export * from './peers.ts'
export * from './priors.ts'
export * from './reports.ts'
export * from './second-opinions.ts'
export * from './session.ts'
export * from './studies.ts'
export * from './worklist.ts'
