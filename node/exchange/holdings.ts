/**
 * What this node holds of a study version, and so can serve: the chunks of instances whole in its archive,
 * encrypted again from the archive when asked (chunk ciphertext is deterministic, so every holder serves the
 * same bytes), and the chunks a fetch in progress keeps for instances not yet whole.
 */
import type { ChunkRequest } from '../../protocol/exchange/messages.ts'
import { CHUNK_TAG_BYTES, TRANSFER_CHUNK_PLAINTEXT } from '../../protocol/exchange/manifest.ts'
import type { Archive } from '../archive/archive.ts'
import { encryptChunk } from './crypto.ts'
import { Recent } from './recent.ts'
import type { OpenVersion, StudyVersions } from './versions.ts'

export interface HoldingsComponents {
  archive: Pick<Archive, 'instance' | 'read' | 'hasChunk' | 'readChunk'>
  versions: Pick<StudyVersions, 'manifest' | 'open' | 'partialChunks'>
}

export class Holdings {
  private readonly components: HoldingsComponents
  /** ciphertext chunks and files recently used to serve, so frames of one chunk do not repeat the work */
  private readonly sealedChunks = new Recent<string, Buffer>(16)
  private readonly files = new Recent<string, Buffer>(4)

  constructor (components: HoldingsComponents) {
    this.components = components
  }

  /** Which chunks this node can serve: those of instances whole in its archive, and chunks it keeps. */
  async have (version: OpenVersion): Promise<Uint8Array> {
    const { archive, versions } = this.components
    const { manifest, index } = version
    const bits = new Uint8Array(Math.ceil(manifest.chunkHashes.length / 8))
    const set = (i: number): void => { bits[i >> 3] = (bits[i >> 3] as number) | (1 << (i & 7)) }
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
  async requested (request: ChunkRequest): Promise<Buffer | undefined> {
    const { versions } = this.components
    const manifest = await versions.manifest(request.studyUid)
    const version = manifest?.versionId === request.versionId ? await versions.open(manifest) : undefined
    const size = version?.manifest.chunkSizes[request.index]
    if (version === undefined || size === undefined || request.offset >= size) return undefined
    return await this.sealedChunk(version, request.index)
  }

  /** Chunk `index` of a version, sealed as in the manifest, or undefined when this node does not hold it. */
  async sealedChunk (version: OpenVersion, index: number): Promise<Buffer | undefined> {
    const { archive } = this.components
    const { manifest, index: manifestIndex, key } = version
    const id = `${manifest.versionId}/${index}`
    const cached = this.sealedChunks.get(id)
    if (cached !== undefined) return cached
    const instance = manifestIndex.instances[version.instanceOfChunk[index] as number]
    if (instance === undefined) return undefined
    let sealed: Buffer | undefined
    let file = this.files.get(instance.sopUid)
    if (file === undefined) {
      const record = await archive.instance(instance.sopUid)
      if (record !== undefined && record.sha256 === instance.sha256) {
        file = await archive.read(record)
        this.files.set(instance.sopUid, file)
      }
    }
    if (file !== undefined) {
      // Every chunk of an instance but its last holds TRANSFER_CHUNK_PLAINTEXT bytes (see versions.ts publish).
      const start = (index - instance.firstChunk) * TRANSFER_CHUNK_PLAINTEXT
      const plaintextSize = (manifest.chunkSizes[index] as number) - CHUNK_TAG_BYTES
      const last = index === manifest.chunkHashes.length - 1
      const plaintext = file.subarray(start, start + plaintextSize)
      sealed = encryptChunk(key, manifest.studyUid, manifest.versionId, index, last, plaintext)
    } else {
      // A reader part way through a large instance holds some of its chunks as they came.
      const hash = manifest.chunkHashes[index] as string
      if (!await archive.hasChunk(hash)) return undefined
      sealed = await archive.readChunk(hash)
    }
    this.sealedChunks.set(id, sealed)
    return sealed
  }
}
