/**
 * @packageDocumentation
 * Membership wire formats: consortium documents (certificates, revocations, join requests), the member
 * handshake that gates every connection, revocation spreading and the address book. Shapes and bytes only; the
 * node verifies.
 */
export * from './certificate.ts'
export * from './handshake.ts'
export * from './revocations.ts'
export * from './addresses.ts'
