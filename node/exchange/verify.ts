/**
 * What a node checks before it takes anything a peer sends about a study, and what counts against a peer
 * that sends what cannot be honest:
 *
 * - a manifest (announced, or in answer to a manifest request): signed by a member of this consortium,
 *   dated no later than clocks drift, and not a version of a study whose versions come from another origin;
 * - a key wrap: made for this node, signed by a member, and it opens; then the version's sealed index is
 *   checked against its manifest (`StudyVersions.adopt`) before anything of the version is kept;
 * - a chunk: its SHA-256 is the manifest's; an instance rebuilt from chunks: its size is the sealed index's,
 *   and the archive stores it only if its SHA-256 is (assemble.ts).
 */
import type { Logger } from 'pino'
import { CHUNK_FORM, type ChunkForm } from '../../protocol/exchange/chunks.ts'
import { CHUNK_TAG_BYTES, type KeyWrap, type StudyManifest } from '../../protocol/exchange/manifest.ts'
import { sha256Hex } from '../hash.ts'
import { release } from '../heap.ts'
import type { Identity } from '../identity/keys.ts'
import type { MembershipRegistry } from '../membership/registry.ts'
import { CLOCK_SKEW_MS } from '../membership/trust.ts'
import type { PeerPenalties, RefusalCode } from '../p2p/penalties.ts'
import { decryptChunk, encryptChunk, keyWrapVerifies, manifestVerifies, unwrapContentKey } from './crypto.ts'
import { unpackChunk } from './packing.ts'
import type { OpenVersion, StudyVersions } from './versions.ts'

/** Who sent something, and on which protocol: what a refusal of it is logged and counted against. */
export interface Sender {
  peer: string
  protocol: string
}

/** Why a version a peer offers is not taken. */
export interface VersionRefusal {
  code: RefusalCode
  error: string
}

export interface VersionCheckComponents {
  identity: Pick<Identity, 'peerId' | 'wrapPrivateKey' | 'wrapPublicKey'>
  consortiumId: string
  registry: Pick<MembershipRegistry, 'isMember'>
  penalties: Pick<PeerPenalties, 'refuse'>
  versions: Pick<StudyVersions, 'manifest' | 'adopt'>
  log: Logger
}

export class VersionCheck {
  private readonly components: VersionCheckComponents

  constructor(components: VersionCheckComponents) {
    this.components = components
  }

  /** Checks a manifest from a peer: signature, consortium, origin a member. */
  async acceptableManifest(manifest: StudyManifest): Promise<boolean> {
    const { consortiumId, registry } = this.components
    if (manifest.consortiumId !== consortiumId || !registry.isMember(manifest.origin)) return false
    return await manifestVerifies(manifest)
  }

  /**
   * Why a version a peer offers (announced, or in answer to a manifest request) must not be taken, or
   * undefined when it may: signed by a member of this consortium, dated no later than clocks drift (a date
   * far ahead would outrank every honest version), and not a version of a study whose versions come from
   * another origin (a member cannot replace a site's study, or this node's own, with a study of its making).
   */
  async versionRefusal(manifest: StudyManifest): Promise<VersionRefusal | undefined> {
    if (!(await this.acceptableManifest(manifest))) {
      const error = `the manifest of study ${manifest.studyUid} does not verify (signature, consortium or origin)`
      return { code: 'bad-manifest', error }
    }
    if (Date.parse(manifest.createdAt) > Date.now() + CLOCK_SKEW_MS) {
      const error = `the manifest of study ${manifest.studyUid} is dated ${manifest.createdAt}`
      return { code: 'manifest-from-the-future', error }
    }
    const current = await this.components.versions.manifest(manifest.studyUid)
    if (current !== undefined && current.origin !== manifest.origin) {
      const error = `study ${manifest.studyUid} comes from ${current.origin}, not ${manifest.origin}`
      return { code: 'foreign-version', error }
    }
    return undefined
  }

  /**
   * Opens a version with a wrap made for this node, after checking the wrap and the version's index
   * against its manifest; only then is anything of it stored. Undefined when the wrap is not for this
   * node or does not hold; what `from` sent that cannot be honest is counted against it.
   */
  async openWithWrap(manifest: StudyManifest, wrap: KeyWrap, from: Sender): Promise<OpenVersion | undefined> {
    const { identity, registry, penalties, versions, log } = this.components
    if (wrap.recipient !== identity.peerId || wrap.studyUid !== manifest.studyUid) return undefined
    if (wrap.versionId !== manifest.versionId) return undefined
    const refuse = (code: 'bad-key-wrap' | 'bad-manifest-index', error: string): undefined => {
      const detail = { study: manifest.studyUid, by: wrap.wrappedBy }
      penalties.refuse(log, { ...from, code, event: code, error, detail })
      return undefined
    }
    if (!registry.isMember(wrap.wrappedBy) || !(await keyWrapVerifies(wrap))) {
      return refuse('bad-key-wrap', 'a key wrap for this node whose signature does not verify, or by a non-member')
    }
    let key: Buffer
    try {
      key = unwrapContentKey(wrap, identity.wrapPrivateKey, identity.wrapPublicKey)
    } catch (error) {
      return refuse('bad-key-wrap', `a key wrap for this node does not open: ${(error as Error).message}`)
    }
    try {
      return await versions.adopt(manifest, key, [wrap])
    } catch (error) {
      return refuse('bad-manifest-index', `the version's sealed index does not hold: ${(error as Error).message}`)
    }
  }
}

/** Whether a chunk's sealed bytes are the ones the manifest lists at `index`. */
export const chunkMatches = (manifest: StudyManifest, index: number, sealed: Uint8Array): boolean =>
  sha256Hex(sealed) === manifest.chunkHashes[index]

/**
 * A chunk checked against its version: the sealed bytes the manifest lists, or, for a chunk that is a whole
 * instance, the instance itself with its SHA-256 (the sealed index's, which the manifest vouches for), so that
 * nothing hashes it again on its way into the archive.
 */
export type CheckedChunk = { sealed: Buffer } | { instance: Buffer; sha256: string }

/**
 * Checks a chunk that came whole from a holder, in the form it came (`CHUNK_FORM`): undefined when it is not
 * what the version lists at `index` (altered, for another place or key, or it does not unpack).
 *
 * A chunk that is a whole instance (most images) is opened (AES-GCM: its tag fails for any altered byte) and its
 * plaintext hashed once against the instance's SHA-256; the bytes are hashed once on the asker, not three times
 * (sealed, then the file, then the stored chunk). A chunk of an instance that spans several is checked sealed,
 * against the manifest's hash, as it is kept sealed until its instance is whole.
 */
export async function checkChunk(
  version: OpenVersion,
  index: number,
  form: ChunkForm,
  bytes: Buffer
): Promise<CheckedChunk | undefined> {
  const { manifest, key } = version
  const { studyUid, versionId } = manifest
  const instance = version.index.instances[version.instanceOfChunk[index] as number]
  const size = manifest.chunkSizes[index]
  if (instance === undefined || size === undefined) return undefined
  if (instance.chunkCount > 1 && form === CHUNK_FORM.sealed) {
    return chunkMatches(manifest, index, bytes) ? { sealed: bytes } : undefined
  }
  const last = index === manifest.chunkHashes.length - 1
  let plaintext: Buffer
  try {
    plaintext =
      form === CHUNK_FORM.packed
        ? await unpackChunk(key, { studyUid, versionId, index, last }, bytes, size - CHUNK_TAG_BYTES)
        : decryptChunk(key, studyUid, versionId, index, last, bytes)
  } catch {
    return undefined
  }
  if (instance.chunkCount > 1) {
    // Packed: sealed again as the manifest lists it, to be kept sealed until its instance is whole.
    const sealed = encryptChunk(key, studyUid, versionId, index, last, plaintext)
    release(plaintext)
    return chunkMatches(manifest, index, sealed) ? { sealed } : undefined
  }
  if (plaintext.byteLength !== instance.size || sha256Hex(plaintext) !== instance.sha256) return undefined
  return { instance: plaintext, sha256: instance.sha256 }
}
