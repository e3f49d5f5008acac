/**
 * What this node holds of a study version, and so can serve: the chunks of instances whole in its archive,
 * encrypted again from the archive when asked (chunk ciphertext is deterministic, so every holder serves the
 * same bytes), and the chunks a fetch in progress keeps for instances not yet whole. For a peer that speaks
 * `/radmesh/chunks/2.0.0`, a chunk of an instance in the archive is packed (compressed, then sealed under
 * the wire key) when that saves (packing.ts).
 */
import { CHUNK_FORM, type ChunkForm } from '../../protocol/exchange/chunks.ts'
import type { ChunkRequest } from '../../protocol/exchange/messages.ts'
import { CHUNK_TAG_BYTES, TRANSFER_CHUNK_PLAINTEXT } from '../../protocol/exchange/manifest.ts'
import type { Archive } from '../archive/archive.ts'
import { encryptChunk } from './crypto.ts'
import { packChunk } from './packing.ts'
import { Recent } from './recent.ts'
import type { OpenVersion, StudyVersions } from './versions.ts'

/** A chunk as it goes on the wire: sealed (the manifest's bytes) or packed. */
export interface WireChunk {
  form: ChunkForm
  bytes: Buffer
}

export interface HoldingsComponents {
  archive: Pick<Archive, 'instance' | 'read' | 'hasChunk' | 'readChunk'>
  versions: Pick<StudyVersions, 'openVersion' | 'partialChunks'>
}

export class Holdings {
  private readonly components: HoldingsComponents
  /** ciphertext chunks and files recently used to serve, so frames of one chunk do not repeat the work */
  private readonly sealedChunks = new Recent<string, Buffer>(16)
  private readonly packedChunks = new Recent<string, WireChunk>(16)
  private readonly files = new Recent<string, Buffer>(4)

  constructor(components: HoldingsComponents) {
    this.components = components
  }

  /** Which chunks this node can serve: those of instances whole in its archive, and chunks it keeps. */
  async have(version: OpenVersion): Promise<Uint8Array> {
    const { archive, versions } = this.components
    const { manifest, index } = version
    const bits = new Uint8Array(Math.ceil(manifest.chunkHashes.length / 8))
    const set = (i: number): void => {
      bits[i >> 3] = (bits[i >> 3] as number) | (1 << (i & 7))
    }
    for (const instance of index.instances) {
      const record = await archive.instance(instance.sopUid)
      if (record !== undefined && record.sha256 === instance.sha256) {
        for (let c = 0; c < instance.chunkCount; c++) set(instance.firstChunk + c)
      }
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
    const { manifest, key } = version
    const id = `${manifest.versionId}/${index}`
    const cached = this.packedChunks.get(id)
    if (cached !== undefined) return cached
    const plaintext = await this.plaintextChunk(version, index)
    let wire: WireChunk | undefined
    if (plaintext !== undefined) {
      const last = index === manifest.chunkHashes.length - 1
      const place = { studyUid: manifest.studyUid, versionId: manifest.versionId, index, last }
      const packed = await packChunk(key, place, plaintext)
      if (packed !== undefined) wire = { form: CHUNK_FORM.packed, bytes: packed }
    }
    if (wire === undefined) {
      // Incompressible, or held only as the sealed chunk a fetch in progress keeps.
      const sealed = await this.sealedChunk(version, index)
      if (sealed === undefined) return undefined
      wire = { form: CHUNK_FORM.sealed, bytes: sealed }
    }
    this.packedChunks.set(id, wire)
    return wire
  }

  /** The plaintext of chunk `index`, from its instance in the archive; undefined when that is not here. */
  private async plaintextChunk(version: OpenVersion, index: number): Promise<Buffer | undefined> {
    const { archive } = this.components
    const { manifest, index: manifestIndex } = version
    const instance = manifestIndex.instances[version.instanceOfChunk[index] as number]
    if (instance === undefined) return undefined
    let file = this.files.get(instance.sopUid)
    if (file === undefined) {
      const record = await archive.instance(instance.sopUid)
      if (record === undefined || record.sha256 !== instance.sha256) return undefined
      file = await archive.read(record)
      this.files.set(instance.sopUid, file)
    }
    // Every chunk of an instance but its last holds TRANSFER_CHUNK_PLAINTEXT bytes (see versions.ts publish).
    const start = (index - instance.firstChunk) * TRANSFER_CHUNK_PLAINTEXT
    const plaintextSize = (manifest.chunkSizes[index] as number) - CHUNK_TAG_BYTES
    return file.subarray(start, start + plaintextSize)
  }

  /** Chunk `index` of a version, sealed as in the manifest, or undefined when this node does not hold it. */
  async sealedChunk(version: OpenVersion, index: number): Promise<Buffer | undefined> {
    const { archive } = this.components
    const { manifest, key } = version
    const id = `${manifest.versionId}/${index}`
    const cached = this.sealedChunks.get(id)
    if (cached !== undefined) return cached
    let sealed: Buffer | undefined
    const plaintext = await this.plaintextChunk(version, index)
    if (plaintext !== undefined) {
      const last = index === manifest.chunkHashes.length - 1
      sealed = encryptChunk(key, manifest.studyUid, manifest.versionId, index, last, plaintext)
    } else {
      // A reader part way through a large instance holds some of its chunks as they came.
      const hash = manifest.chunkHashes[index] as string
      if (!(await archive.hasChunk(hash))) return undefined
      sealed = await archive.readChunk(hash)
    }
    this.sealedChunks.set(id, sealed)
    return sealed
  }
}
