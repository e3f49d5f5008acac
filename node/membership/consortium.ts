/**
 * The administrator's side of a consortium: create the root key, admit members, revoke them.
 *
 * DIR/consortium.json  public: name, id, root public key (hand it to every member)
 * DIR/root.key         secret (0600): the root private key; whoever holds it decides who is a member
 * DIR/issued/          every certificate and revocation signed, kept as the administrator's record
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import type { KeyObject } from 'node:crypto'
import { asConsortiumId, type PeerIdString } from '../../protocol/ids.ts'
import {
  certificateSigningBytes,
  type ConsortiumInfo,
  decodeConsortiumInfo,
  type JoinRequest,
  type MemberCertificate,
  type Revocation,
  revocationSigningBytes
} from '../../protocol/membership/index.ts'
import { CertificateError, ConsortiumError } from '../errors.ts'
import { exists, readJsonFile, SECRET_FILE_MODE, toJsonText, writeFileAtomic } from '../files.ts'
import { consortiumIdOf, exportPrivateKeyDer, generateEd25519, importPrivateKeyDer, signEd25519 } from './crypto.ts'

export const DEFAULT_CERTIFICATE_LIFETIME_MS = 365 * 24 * 3600_000

export interface ConsortiumDir {
  dir: string
  info: ConsortiumInfo
  rootKey: KeyObject
}

const consortiumFile = (dir: string): string => join(dir, 'consortium.json')
const rootKeyFile = (dir: string): string => join(dir, 'root.key')
const revocationFile = (dir: string, peerId: string): string => join(dir, 'issued', `revocation-${peerId}.json`)

export async function createConsortium(dir: string, name: string): Promise<ConsortiumInfo> {
  if ((await exists(rootKeyFile(dir))) || (await exists(consortiumFile(dir)))) {
    throw new ConsortiumError(
      'RADMESH_CONSORTIUM_EXISTS',
      `${dir} already holds a consortium; choose another --dir (its root key must never be replaced)`
    )
  }
  await fs.mkdir(join(dir, 'issued'), { recursive: true })
  const root = generateEd25519()
  const info: ConsortiumInfo = {
    v: 1,
    id: asConsortiumId(consortiumIdOf(root.publicKeyRaw)),
    name,
    rootPublicKey: root.publicKeyRaw,
    createdAt: new Date().toISOString()
  }
  await writeFileAtomic(rootKeyFile(dir), exportPrivateKeyDer(root.privateKey), SECRET_FILE_MODE)
  await writeFileAtomic(consortiumFile(dir), toJsonText(info))
  return info
}

export async function openConsortium(dir: string): Promise<ConsortiumDir> {
  const missing = (): Error =>
    new ConsortiumError(
      'RADMESH_CONSORTIUM_MISSING',
      `no consortium in ${dir}; run "radmesh consortium create --dir ${dir} --name NAME" first`
    )
  const info = await readJsonFile(consortiumFile(dir), 'consortium', decodeConsortiumInfo, missing)
  let der: Buffer
  try {
    der = await fs.readFile(rootKeyFile(dir))
  } catch {
    throw new ConsortiumError(
      'RADMESH_CONSORTIUM_MISSING',
      `no root key at ${rootKeyFile(dir)}; only the consortium administrator's copy of ${dir} can admit or revoke`
    )
  }
  let rootKey: KeyObject
  try {
    rootKey = importPrivateKeyDer(der)
  } catch {
    throw new ConsortiumError(
      'RADMESH_CONSORTIUM_MISSING',
      `the root key at ${rootKeyFile(dir)} is damaged; restore it from the administrator's backup`
    )
  }
  return { dir, info, rootKey }
}

export interface AdmitOptions {
  now?: number
  lifetimeMs?: number
}

export async function admit(
  consortium: ConsortiumDir,
  request: JoinRequest,
  options: AdmitOptions = {}
): Promise<MemberCertificate> {
  if (await exists(revocationFile(consortium.dir, request.peerId))) {
    throw new CertificateError(
      'RADMESH_REVOKED',
      `peer ${request.peerId} was revoked and stays revoked; ` +
        'the member must run "radmesh init" with a new HOME to get a new identity'
    )
  }
  const now = options.now ?? Date.now()
  const unsigned: Omit<MemberCertificate, 'signature'> = {
    v: 1,
    consortiumId: consortium.info.id,
    peerId: request.peerId,
    name: request.name,
    role: request.role,
    subspecialties: request.subspecialties,
    wrapKey: request.wrapKey,
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + (options.lifetimeMs ?? DEFAULT_CERTIFICATE_LIFETIME_MS)).toISOString()
  }
  const certificate = { ...unsigned, signature: signEd25519(consortium.rootKey, certificateSigningBytes(unsigned)) }
  await writeFileAtomic(
    join(consortium.dir, 'issued', `certificate-${request.peerId}-${now}.json`),
    toJsonText(certificate)
  )
  return certificate
}

export async function revoke(consortium: ConsortiumDir, peerId: PeerIdString, reason?: string): Promise<Revocation> {
  const unsigned: Omit<Revocation, 'signature'> = {
    v: 1,
    consortiumId: consortium.info.id,
    peerId,
    revokedAt: new Date().toISOString(),
    ...(reason === undefined ? {} : { reason })
  }
  const revocation = { ...unsigned, signature: signEd25519(consortium.rootKey, revocationSigningBytes(unsigned)) }
  await writeFileAtomic(revocationFile(consortium.dir, peerId), toJsonText(revocation))
  return revocation
}
