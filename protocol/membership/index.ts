/**
 * @packageDocumentation
 * Membership wire formats: consortium documents (certificates, revocations, join requests), the member
 * handshake that gates every connection, and revocation spreading. Shapes and bytes only; the node verifies.
 */
export * from './certificate.ts'
export * from './handshake.ts'
export * from './revocations.ts'
