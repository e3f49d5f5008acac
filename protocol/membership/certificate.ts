/**
 * Consortium documents: the consortium's public description, member certificates and revocations.
 *
 * A consortium is one Ed25519 root key held by its administrator. The root signs a certificate for each
 * member (binding its libp2p peer id to a name, a role and an X25519 key for receiving study keys) and
 * a revocation for each member that must be shut out. Both travel as JSON; what is signed is
 * `SIGNING_CONTEXT_* + canonicalJson(document without "signature")`, so a certificate can never be
 * replayed as a revocation or the other way round.
 *
 * This module defines the shapes and the bytes. Signing and verifying live in `node/membership`.
 */
import { MalformedMessageError } from '../errors.ts'
import {
  asObject,
  base64urlField,
  integerField,
  optionalStringField,
  signingBytes,
  stringArrayField,
  stringField,
  timeField
} from '../json.ts'
import { type ConsortiumId, isRole, type PeerIdString, type Role } from '../ids.ts'

export const CERTIFICATE_VERSION = 1
export const SIGNING_CONTEXT_CERTIFICATE = 'radmesh/member-certificate/v1\n'
export const SIGNING_CONTEXT_REVOCATION = 'radmesh/revocation/v1\n'
/** Names are shown to people; 128 characters is room for "St Mary's Hospital, Department of Radiology". */
export const MAX_NAME_LENGTH = 128
export const MAX_SUBSPECIALTIES = 16
export const MAX_SUBSPECIALTY_LENGTH = 32
/** A peer id string of an Ed25519 key is 52 characters; 128 leaves room for other key types, no more. */
export const MAX_PEER_ID_LENGTH = 128
export const SUBSPECIALTY_PATTERN = /^[a-z][a-z0-9-]*$/

/** `consortium.json`: public, handed to every member. */
export interface ConsortiumInfo {
  v: number
  /** base64url SHA-256 of the raw root public key: what certificates name. */
  id: ConsortiumId
  name: string
  /** raw Ed25519 public key, base64url */
  rootPublicKey: string
  createdAt: string
}

export interface MemberCertificate {
  v: number
  consortiumId: ConsortiumId
  peerId: PeerIdString
  name: string
  role: Role
  subspecialties: string[]
  /** raw X25519 public key, base64url: study keys are wrapped to it */
  wrapKey: string
  issuedAt: string
  expiresAt: string
  /** Ed25519 signature by the consortium root, base64url */
  signature: string
}

export interface Revocation {
  v: number
  consortiumId: ConsortiumId
  peerId: PeerIdString
  revokedAt: string
  reason?: string
  signature: string
}

/** What `radmesh init` writes for the administrator: everything a certificate needs but the signature. */
export interface JoinRequest {
  v: number
  peerId: PeerIdString
  name: string
  role: Role
  subspecialties: string[]
  wrapKey: string
  requestedAt: string
}

/** A document before signing; a signed one is accepted too and its signature ignored. */
type Unsigned<T> = Omit<T, 'signature'> & { signature?: string }

export const certificateSigningBytes = (certificate: Unsigned<MemberCertificate>): Uint8Array =>
  signingBytes(SIGNING_CONTEXT_CERTIFICATE, certificate)
export const revocationSigningBytes = (revocation: Unsigned<Revocation>): Uint8Array =>
  signingBytes(SIGNING_CONTEXT_REVOCATION, revocation)

function checkVersion(object: Record<string, unknown>, what: string): number {
  const v = integerField(object, 'v', what)
  if (v !== 1) throw new MalformedMessageError(`${what} has version ${v}; this radmesh reads version 1`)
  return v
}

function roleField(object: Record<string, unknown>, what: string): Role {
  const role = object['role']
  if (!isRole(role)) throw new MalformedMessageError(`${what}.role must be "site" or "radiologist"`)
  return role
}

function subspecialtiesField(object: Record<string, unknown>, what: string): string[] {
  const list = stringArrayField(object, 'subspecialties', what, MAX_SUBSPECIALTIES, MAX_SUBSPECIALTY_LENGTH)
  for (const item of list) {
    if (!SUBSPECIALTY_PATTERN.test(item))
      throw new MalformedMessageError(`${what}.subspecialties: "${item}" must be lower-case letters, digits and dashes`)
  }
  return list
}

function nameField(object: Record<string, unknown>, what: string): string {
  const name = stringField(object, 'name', what, MAX_NAME_LENGTH)
  if (name.trim() === '') throw new MalformedMessageError(`${what}.name must not be empty`)
  return name
}

export function decodeConsortiumInfo(value: unknown): ConsortiumInfo {
  const what = 'consortium'
  const object = asObject(value, what)
  return {
    v: checkVersion(object, what),
    id: base64urlField(object, 'id', what, 32) as ConsortiumId,
    name: nameField(object, what),
    rootPublicKey: base64urlField(object, 'rootPublicKey', what, 32),
    createdAt: timeField(object, 'createdAt', what)
  }
}

export function decodeCertificate(value: unknown): MemberCertificate {
  const what = 'certificate'
  const object = asObject(value, what)
  return {
    v: checkVersion(object, what),
    consortiumId: base64urlField(object, 'consortiumId', what, 32) as ConsortiumId,
    peerId: stringField(object, 'peerId', what, MAX_PEER_ID_LENGTH) as PeerIdString,
    name: nameField(object, what),
    role: roleField(object, what),
    subspecialties: subspecialtiesField(object, what),
    wrapKey: base64urlField(object, 'wrapKey', what, 32),
    issuedAt: timeField(object, 'issuedAt', what),
    expiresAt: timeField(object, 'expiresAt', what),
    signature: base64urlField(object, 'signature', what, 64)
  }
}

export function decodeRevocation(value: unknown): Revocation {
  const what = 'revocation'
  const object = asObject(value, what)
  const reason = optionalStringField(object, 'reason', what, 256)
  return {
    v: checkVersion(object, what),
    consortiumId: base64urlField(object, 'consortiumId', what, 32) as ConsortiumId,
    peerId: stringField(object, 'peerId', what, MAX_PEER_ID_LENGTH) as PeerIdString,
    revokedAt: timeField(object, 'revokedAt', what),
    ...(reason === undefined ? {} : { reason }),
    signature: base64urlField(object, 'signature', what, 64)
  }
}

export function decodeJoinRequest(value: unknown): JoinRequest {
  const what = 'join request'
  const object = asObject(value, what)
  return {
    v: checkVersion(object, what),
    peerId: stringField(object, 'peerId', what, MAX_PEER_ID_LENGTH) as PeerIdString,
    name: nameField(object, what),
    role: roleField(object, what),
    subspecialties: subspecialtiesField(object, what),
    wrapKey: base64urlField(object, 'wrapKey', what, 32),
    requestedAt: timeField(object, 'requestedAt', what)
  }
}
