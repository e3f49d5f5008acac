/**
 * @packageDocumentation
 * Who is in the consortium: the administrator's operations (create, admit, revoke), verifying certificates
 * and revocations, the run-time registry, the member handshake (a libp2p connection encrypter), the
 * connection gater and revocation spreading.
 */
export { admit, createConsortium, openConsortium, revoke } from './consortium.ts'
export { membershipGater } from './gater.ts'
export { memberHandshake, MembershipRefusedError } from './handshake.ts'
export { MembershipRegistry } from './registry.ts'
export { RevocationSpreader } from './revocation-spread.ts'
export { checkCertificate, isValidRevocation, trustFrom, type ConsortiumTrust } from './trust.ts'
