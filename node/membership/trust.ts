/**
 * Verifying consortium documents against the root key in `consortium.json`.
 * Pure functions of (document, consortium, now): the handshake, the CLI and the tests all call these.
 */
import type { KeyObject } from 'node:crypto'
import {
  certificateSigningBytes,
  type ConsortiumInfo,
  type MemberCertificate,
  type RefusalCode,
  type Revocation,
  revocationSigningBytes
} from '../../protocol/membership/index.ts'
import { CertificateError } from '../errors.ts'
import { consortiumIdOf, ed25519PublicKey, verifyEd25519 } from './crypto.ts'

/** Clocks in hospitals drift; a certificate issued "in the future" by up to this much is still accepted. */
export const CLOCK_SKEW_MS = 5 * 60_000

export interface ConsortiumTrust {
  info: ConsortiumInfo
  rootKey: KeyObject
}

export function trustFrom(info: ConsortiumInfo): ConsortiumTrust {
  if (consortiumIdOf(info.rootPublicKey) !== info.id) {
    throw new CertificateError(
      'RADMESH_CERTIFICATE_INVALID',
      `consortium "${info.name}": its id does not match its root key; the consortium.json was altered`
    )
  }
  return { info, rootKey: ed25519PublicKey(info.rootPublicKey) }
}

export type CertificateCheck = { ok: true } | { ok: false; code: RefusalCode; reason: string }

export function checkCertificate(
  certificate: MemberCertificate,
  trust: ConsortiumTrust,
  now = Date.now()
): CertificateCheck {
  if (certificate.consortiumId !== trust.info.id) {
    return {
      ok: false,
      code: 'wrong-consortium',
      reason: `certificate of consortium ${certificate.consortiumId}, not of "${trust.info.name}" (${trust.info.id})`
    }
  }
  if (!verifyEd25519(trust.rootKey, certificateSigningBytes(certificate), certificate.signature)) {
    return {
      ok: false,
      code: 'bad-signature',
      reason: 'the certificate signature does not verify against the consortium root key'
    }
  }
  if (Date.parse(certificate.issuedAt) > now + CLOCK_SKEW_MS) {
    return {
      ok: false,
      code: 'not-yet-valid',
      reason: `certificate issued at ${certificate.issuedAt}, in the future; check the clocks`
    }
  }
  if (Date.parse(certificate.expiresAt) <= now) {
    return { ok: false, code: 'expired', reason: `certificate expired at ${certificate.expiresAt}` }
  }
  return { ok: true }
}

/** Throws the CertificateError that matches the check, for the CLI paths that must stop on a bad certificate. */
export function assertCertificate(certificate: MemberCertificate, trust: ConsortiumTrust, now = Date.now()): void {
  const check = checkCertificate(certificate, trust, now)
  if (check.ok) return
  const code =
    check.code === 'wrong-consortium'
      ? 'RADMESH_WRONG_CONSORTIUM'
      : check.code === 'expired'
        ? 'RADMESH_CERTIFICATE_EXPIRED'
        : 'RADMESH_CERTIFICATE_INVALID'
  throw new CertificateError(code, check.reason)
}

export function isValidRevocation(revocation: Revocation, trust: ConsortiumTrust): boolean {
  return (
    revocation.consortiumId === trust.info.id &&
    verifyEd25519(trust.rootKey, revocationSigningBytes(revocation), revocation.signature)
  )
}
