/**
 * A member's HOME over its life: `init` (keys and a join request), `join` (install the certificate the
 * administrator signed), and `loadMember` (everything `start` needs, checked, or one clear error).
 */
import { promises as fs } from 'node:fs'
import type { Role } from '../../protocol/ids.ts'
import {
  decodeCertificate,
  decodeConsortiumInfo,
  decodeJoinRequest,
  type ConsortiumInfo,
  type JoinRequest,
  type MemberCertificate,
  MAX_NAME_LENGTH,
  MAX_SUBSPECIALTIES,
  SUBSPECIALTY_PATTERN
} from '../../protocol/membership/index.ts'
import { CertificateError, HomeError, UsageError } from '../errors.ts'
import { exists, readJsonFile, toJsonText, writeFileAtomic } from '../files.ts'
import { assertCertificate, type ConsortiumTrust, trustFrom } from '../membership/trust.ts'
import { type HomePaths, homePaths } from './home.ts'
import { createIdentity, type Identity, loadIdentity } from './keys.ts'

export interface InitOptions {
  name: string
  role: Role
  subspecialties: string[]
}

export function checkProfile({ name, subspecialties }: InitOptions): void {
  if (name.trim() === '' || name.length > MAX_NAME_LENGTH)
    throw new UsageError(`--name must be 1 to ${MAX_NAME_LENGTH} characters`)
  if (subspecialties.length > MAX_SUBSPECIALTIES) throw new UsageError(`at most ${MAX_SUBSPECIALTIES} subspecialties`)
  for (const item of subspecialties) {
    if (!SUBSPECIALTY_PATTERN.test(item))
      throw new UsageError(`subspecialty "${item}": use lower-case letters, digits and dashes (e.g. neuro,msk,body)`)
  }
}

export async function initHome(home: string, options: InitOptions): Promise<JoinRequest> {
  checkProfile(options)
  const paths = homePaths(home)
  if (await exists(paths.identityKey)) {
    throw new HomeError(
      'RADMESH_HOME_EXISTS',
      `${home} already has an identity; a node's keys are never replaced (use another --home)`
    )
  }
  await fs.mkdir(home, { recursive: true, mode: 0o700 })
  const identity = await createIdentity(paths)
  const request: JoinRequest = {
    v: 1,
    peerId: identity.peerId,
    name: options.name,
    role: options.role,
    subspecialties: options.subspecialties,
    wrapKey: identity.wrapPublicKey,
    requestedAt: new Date().toISOString()
  }
  await writeFileAtomic(paths.profile, toJsonText(request))
  await writeFileAtomic(paths.joinRequest, toJsonText(request))
  return request
}

async function requireHome(paths: HomePaths): Promise<void> {
  if (!(await exists(paths.home)))
    throw new HomeError(
      'RADMESH_HOME_MISSING',
      `HOME ${paths.home} does not exist; ` +
        `run "radmesh init --home ${paths.home} --name NAME --role site|radiologist" first`
    )
}

export async function readJoinRequest(path: string): Promise<JoinRequest> {
  return await readJsonFile(
    path,
    'join request',
    decodeJoinRequest,
    () => new HomeError('RADMESH_HOME_MISSING', `no join request at ${path}; "radmesh init" writes one`)
  )
}

export async function readCertificateFile(path: string): Promise<MemberCertificate> {
  return await readJsonFile(
    path,
    'certificate',
    decodeCertificate,
    () => new HomeError('RADMESH_NOT_JOINED', `no certificate at ${path}`)
  )
}

export async function readConsortiumFile(path: string): Promise<ConsortiumInfo> {
  return await readJsonFile(
    path,
    'consortium.json',
    decodeConsortiumInfo,
    () => new HomeError('RADMESH_NOT_JOINED', `no consortium.json at ${path}`)
  )
}

/**
 * Installs a certificate in HOME after checking that it was signed by this consortium, for this node's
 * own keys, and is valid now. Nothing is written unless every check passes.
 */
export async function joinHome(
  home: string,
  certificate: MemberCertificate,
  consortium: ConsortiumInfo
): Promise<void> {
  const paths = homePaths(home)
  await requireHome(paths)
  const identity = await loadIdentity(paths)
  const trust = trustFrom(consortium)
  assertCertificate(certificate, trust)
  checkCertificateIsMine(certificate, identity)
  await writeFileAtomic(paths.consortium, toJsonText(consortium))
  await writeFileAtomic(paths.certificate, toJsonText(certificate))
}

function checkCertificateIsMine(certificate: MemberCertificate, identity: Identity): void {
  if (certificate.peerId !== identity.peerId) {
    throw new CertificateError(
      'RADMESH_CERTIFICATE_INVALID',
      `the certificate is for peer ${certificate.peerId}, but this HOME is peer ${identity.peerId}`
    )
  }
  if (certificate.wrapKey !== identity.wrapPublicKey) {
    throw new CertificateError(
      'RADMESH_CERTIFICATE_INVALID',
      'the certificate names another X25519 wrap key than this HOME holds'
    )
  }
}

export interface Member {
  paths: HomePaths
  identity: Identity
  certificate: MemberCertificate
  trust: ConsortiumTrust
}

/** Everything `start` needs, verified. Fails with one clear error for a missing, corrupt or unjoined HOME. */
export async function loadMember(home: string, now = Date.now()): Promise<Member> {
  const paths = homePaths(home)
  await requireHome(paths)
  const identity = await loadIdentity(paths)
  const notJoined = (): Error =>
    new HomeError(
      'RADMESH_NOT_JOINED',
      `${home} has no certificate yet; send ${paths.joinRequest} to the consortium administrator, ` +
        `then run "radmesh join --home ${home} --cert CERT --consortium consortium.json"`
    )
  const certificate = await readJsonFile(paths.certificate, 'certificate', decodeCertificate, notJoined)
  const consortium = await readJsonFile(paths.consortium, 'consortium.json', decodeConsortiumInfo, notJoined)
  const trust = trustFrom(consortium)
  assertCertificate(certificate, trust, now)
  checkCertificateIsMine(certificate, identity)
  return { paths, identity, certificate, trust }
}
