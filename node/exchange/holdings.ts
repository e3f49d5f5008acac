/**
 * What this node holds of a study version, and so can serve: the chunks of instances whole in its archive,
 * encrypted again from the archive when asked (chunk ciphertext is deterministic, so every holder serves the
 * same bytes), and the chunks a fetch in progress keeps for instances not yet whole. For a peer that speaks
 * `/radmesh/chunks/2.0.0`, a chunk of an instance in the archive is packed (compressed, then sealed under
 * the wire key) when that saves (packing.ts).
 */
import { CHUNK_FORM, type ChunkForm } from '../../protocol/exchange/chunks.ts'
import type { ChunkRequest } from '../../protocol/exchange/messages.ts'
import { CHUNK_TAG_BYTES, type ManifestInstance, TRANSFER_CHUNK_PLAINTEXT } from '../../protocol/exchange/manifest.ts'
import type { Archive, InstanceRecord, StoredFile } from '../archive/archive.ts'
import { release } from '../heap.ts'
import { encryptChunk } from './crypto.ts'
import { type ChunkPlace, packChunk } from './packing.ts'
import { Recent } from './recent.ts'
import type { OpenVersion, StudyVersions } from './versions.ts'

/** A chunk as it goes on the wire: sealed (the manifest's bytes) or packed. */
export interface WireChunk {
  form: ChunkForm
  bytes: Buffer
}

/** What the archive's `read` needs of an instance record, without its attributes. */
const storedFile = ({ sopUid, size, sha256, chunks }: InstanceRecord): StoredFile => ({
  sopUid,
  size,
  sha256,
  chunks
})

export interface HoldingsComponents {
  archive: Pick<Archive, 'instance' | 'read' | 'hasChunk' | 'readChunk'>
  versions: Pick<StudyVersions, 'openVersion' | 'partialChunks'>
}

export class Holdings {
  private readonly components: HoldingsComponents
  // No chunk is kept once made: one kept even for the next two chunks' time outlived the minor collections
  // and waited for a full one (heap.ts). With the last two kept, one fetch of a 400-image CT cost the holder
  // 2.75-2.85 CPU seconds and peaked at 227-241 MB; with none, 2.18-2.31 s and 214-218 MB; over 2.10 GB, 21.5
  // s and 261 MB against 15.5-16.7 s and 241-242 MB (docs/PERFORMANCE.md). A chunk asked for again (a
  // dropped link's resume, a second asker) is read and encrypted again: a millisecond or two.
  /** instances of several chunks, read once for all of them */
  private readonly files = new Recent<string, Buffer>(4)
  /**
   * Per version lately asked about (`have`), what the archive's read needs of each of its instances found whole
   * here: the archive's index is asked once per instance, not again for every chunk served. An archive never
   * drops or changes an instance it stored, so an instance found whole stays so; one not found is asked again.
   */
  private readonly stored = new Recent<string, Map<string, StoredFile>>(4)

  constructor(components: HoldingsComponents) {
    this.components = components
  }

  /** Which chunks this node can serve: those of instances whole in its archive, and chunks it keeps. */
  async have(version: OpenVersion): Promise<Uint8Array> {
    const { versions } = this.components
    const { manifest, index } = version
    const bits = new Uint8Array(Math.ceil(manifest.chunkHashes.length / 8))
    const set = (i: number): void => {
      bits[i >> 3] = (bits[i >> 3] as number) | (1 << (i & 7))
    }
    for (const instance of index.instances) {
      if ((await this.storedInstance(version, instance)) === undefined) continue
      for (let c = 0; c < instance.chunkCount; c++) set(instance.firstChunk + c)
    }
    const kept = await versions.partialChunks(manifest.studyUid, manifest.versionId)
    for (const chunkIndex of kept.keys()) set(chunkIndex)
    return bits
  }

  /** The chunk a request asks for, sealed as in the manifest, or undefined when this node cannot serve it. */
  async requested(request: ChunkRequest): Promise<Buffer | undefined> {
    const { versions } = this.components
    const version = await versions.openVersion(request.studyUid, request.versionId)
    const size = version?.manifest.chunkSizes[request.index]
    if (version === undefined || size === undefined || request.offset >= size) return undefined
    return await this.sealedChunk(version, request.index)
  }

  /**
   * The chunk a request asks for as it goes on the wire: packed when `pack`, the request starts at the chunk's
   * start and packing saves; sealed otherwise; undefined when this node cannot serve it.
   */
  async requestedOnWire(request: ChunkRequest, pack: boolean): Promise<WireChunk | undefined> {
    const { versions } = this.components
    if (!pack || request.offset !== 0) {
      const sealed = await this.requested(request)
      return sealed === undefined ? undefined : { form: CHUNK_FORM.sealed, bytes: sealed }
    }
    const version = await versions.openVersion(request.studyUid, request.versionId)
    if (version === undefined || version.manifest.chunkSizes[request.index] === undefined) return undefined
    return await this.packedChunk(version, request.index)
  }

  /** Chunk `index` packed when that saves, else sealed; undefined when this node does not hold it. */
  async packedChunk(version: OpenVersion, index: number): Promise<WireChunk | undefined> {
    const wire = await this.withPlaintext(version, index, async (plaintext, place) => {
      const packed = await packChunk(version.key, place, plaintext)
      if (packed !== undefined) return { form: CHUNK_FORM.packed, bytes: packed }
      // Incompressible.
      return { form: CHUNK_FORM.sealed, bytes: this.sealed(version, place, plaintext) }
    })
    if (wire !== undefined) return wire
    // Held only as the sealed chunk a fetch in progress keeps.
    const kept = await this.keptChunk(version, index)
    return kept === undefined ? undefined : { form: CHUNK_FORM.sealed, bytes: kept }
  }

  /** Chunk `index` of a version, sealed as in the manifest, or undefined when this node does not hold it. */
  async sealedChunk(version: OpenVersion, index: number): Promise<Buffer | undefined> {
    return (
      (await this.withPlaintext(version, index, async (plaintext, place) => this.sealed(version, place, plaintext))) ??
      (await this.keptChunk(version, index))
    )
  }

  /** Chunk `index` sealed as in the manifest (chunk ciphertext is deterministic: every holder's is the same). */
  private sealed(version: OpenVersion, place: ChunkPlace, plaintext: Uint8Array): Buffer {
    return encryptChunk(version.key, place.studyUid, place.versionId, place.index, place.last, plaintext)
  }

  /**
   * `use` of the plaintext of chunk `index`, read from its instance in the archive; undefined when that is not
   * here. An instance of one chunk (most images) is read for that chunk alone and released once used (heap.ts);
   * one of several is kept for its next chunks.
   */
  private async withPlaintext<T>(
    version: OpenVersion,
    index: number,
    use: (plaintext: Buffer, place: ChunkPlace) => Promise<T>
  ): Promise<T | undefined> {
    const { archive } = this.components
    const { manifest, index: manifestIndex } = version
    const instance = manifestIndex.instances[version.instanceOfChunk[index] as number]
    if (instance === undefined) return undefined
    let file = this.files.get(instance.sopUid)
    const own = file === undefined && instance.chunkCount === 1
    if (file === undefined) {
      const record = await this.storedInstance(version, instance)
      if (record === undefined) return undefined
      file = await archive.read(record)
      if (!own) this.files.set(instance.sopUid, file)
    }
    // Every chunk of an instance but its last holds TRANSFER_CHUNK_PLAINTEXT bytes (see versions.ts publish).
    const start = (index - instance.firstChunk) * TRANSFER_CHUNK_PLAINTEXT
    const plaintextSize = (manifest.chunkSizes[index] as number) - CHUNK_TAG_BYTES
    const last = index === manifest.chunkHashes.length - 1
    const place = { studyUid: manifest.studyUid, versionId: manifest.versionId, index, last }
    try {
      return await use(file.subarray(start, start + plaintextSize), place)
    } finally {
      if (own) release(file)
    }
  }

  /**
   * What the archive's read needs of an instance of `version`, when it is whole in the archive (its SHA-256 the
   * version's): from the version's instances found so far, or asked of the archive's index once and kept.
   */
  private async storedInstance(version: OpenVersion, instance: ManifestInstance): Promise<StoredFile | undefined> {
    const key = `${version.manifest.studyUid}/${version.manifest.versionId}`
    let stored = this.stored.get(key)
    if (stored === undefined) {
      stored = new Map()
      this.stored.set(key, stored)
    }
    const known = stored.get(instance.sopUid)
    if (known !== undefined) return known
    const record = await this.components.archive.instance(instance.sopUid)
    if (record === undefined || record.sha256 !== instance.sha256) return undefined
    const file = storedFile(record)
    stored.set(instance.sopUid, file)
    return file
  }

  /** Chunk `index` as a fetch in progress keeps it (a reader part way through a large instance), if it does. */
  private async keptChunk(version: OpenVersion, index: number): Promise<Buffer | undefined> {
    const { archive } = this.components
    const hash = version.manifest.chunkHashes[index] as string
    if (!(await archive.hasChunk(hash))) return undefined
    return await archive.readChunk(hash)
  }
}
