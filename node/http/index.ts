/**
 * @packageDocumentation
 * The HTTP face of a node (fastify): one plugin per route family, bearer-token and session auth, errors as
 * `{ error: { code, message } }`. Routes translate; the work lives in the node's capabilities.
 */
export { Sessions } from './auth.ts'
export { createHttpServer } from './server.ts'
export type { HttpComponents } from './server.ts'
export type { ConnectedMember, Self } from './services.ts'
