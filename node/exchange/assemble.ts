/**
 * From verified chunks to stored instances: a fetch's chunks are held until their instance is whole, then
 * decrypted, checked against the instance's size and SHA-256 and stored by the archive (synced, audited).
 * Chunks of an instance that spans several are kept by the archive as they arrive, and named in the
 * version's record (`p!` keys, versions.ts), so a restart resumes from them.
 */
import type { Logger } from 'pino'
import type { ManifestInstance } from '../../protocol/exchange/manifest.ts'
import type { Archive } from '../archive/archive.ts'
import { offHeapGarbage, release } from '../heap.ts'
import { decryptChunk } from './crypto.ts'
import type { ChunkSchedule } from './schedule.ts'
import type { CheckedChunk } from './verify.ts'
import type { OpenVersion, StudyVersions } from './versions.ts'

/**
 * Instances being stored at once. A puller whose chunks complete more instances than this waits, so
 * verified bytes held in memory stay bounded and the archive's group commits stay full but short. With the
 * chunk being accepted, these are what a crash loses of what was received whole (chunks of an instance that
 * spans several are kept as they come, so an instance lost this way is one chunk at most).
 */
export const IMPORTS_IN_FLIGHT = 8

export interface InstanceAssemblyComponents {
  archive: Pick<Archive, 'instancesOf' | 'store' | 'keepChunk' | 'hasChunk' | 'readChunk'>
  versions: Pick<StudyVersions, 'partialChunks' | 'keepPartial' | 'forgetPartial'>
  log: Logger
}

export interface InstanceAssemblyInit {
  version: OpenVersion
  schedule: ChunkSchedule
  /** an instance could not be stored: the fetch fails */
  failed(error: string): void
  /** every instance of the version is in the archive */
  done(): void
}

export class InstanceAssembly {
  private readonly components: InstanceAssemblyComponents
  private readonly init: InstanceAssemblyInit
  /** per instance (manifest order): whole in the archive */
  private readonly instanceDone: Uint8Array
  /**
   * checked chunks of instances not stored yet: a chunk that is a whole instance as that instance, opened and
   * hashed by the check; a chunk of an instance that spans several sealed
   */
  private readonly verified = new Map<number, CheckedChunk>()
  private readonly verifiedCount = new Map<number, number>()
  private readonly imports = new Set<Promise<void>>()
  instancesLocal = 0
  bytesLocal = 0

  constructor(components: InstanceAssemblyComponents, init: InstanceAssemblyInit) {
    this.components = components
    this.init = init
    this.instanceDone = new Uint8Array(init.version.index.instances.length)
  }

  complete(): boolean {
    return this.instancesLocal === this.init.version.manifest.instanceCount
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.imports])
  }

  /** What this node has of the version already: instances whole in its archive, and chunks kept before a restart. */
  async resume(): Promise<void> {
    const { archive, versions } = this.components
    const { version, schedule } = this.init
    const { manifest, index } = version
    // The study's instances here, listed once: a first fetch finds none, with one read of the index, not one
    // per instance.
    const local = new Map<string, string>()
    for await (const record of archive.instancesOf(manifest.studyUid)) local.set(record.sopUid, record.sha256)
    for (const [i, instance] of index.instances.entries()) {
      if (local.get(instance.sopUid) === instance.sha256) {
        this.markInstanceDone(i, instance)
        schedule.verify(instance.firstChunk, instance.chunkCount)
      }
    }
    for (const [chunkIndex, hash] of await versions.partialChunks(manifest.studyUid, manifest.versionId)) {
      if (schedule.isVerified(chunkIndex) || manifest.chunkHashes[chunkIndex] !== hash) continue
      if (!(await archive.hasChunk(hash))) continue
      schedule.verify(chunkIndex)
      const instance = version.instanceOfChunk[chunkIndex] as number
      this.verifiedCount.set(instance, (this.verifiedCount.get(instance) ?? 0) + 1)
    }
  }

  /** After `resume`: instances whose chunks were all kept before a restart are stored now. */
  storeResumed(): void {
    const { index } = this.init.version
    for (const [instance, count] of this.verifiedCount) {
      const entry = index.instances[instance] as ManifestInstance
      if (count === entry.chunkCount && this.instanceDone[instance] === 0) this.importInstance(instance, 'resumed')
    }
  }

  /** A checked chunk: kept (if its instance spans several) and, once its instance is whole, stored. */
  async accept(index: number, chunk: CheckedChunk, peer: string): Promise<void> {
    const { archive, versions } = this.components
    const { version, schedule } = this.init
    const { studyUid, versionId } = version.manifest
    const instanceIndex = version.instanceOfChunk[index] as number
    const instance = version.index.instances[instanceIndex] as ManifestInstance
    schedule.verify(index)
    if ('sealed' in chunk) {
      // Kept, then named: a chunk kept and not named (a crash in between) is only space.
      const id = await archive.keepChunk(chunk.sealed)
      await versions.keepPartial(studyUid, versionId, index, id)
    }
    this.verified.set(index, chunk)
    const count = (this.verifiedCount.get(instanceIndex) ?? 0) + 1
    this.verifiedCount.set(instanceIndex, count)
    if (count === instance.chunkCount) {
      while (this.imports.size >= IMPORTS_IN_FLIGHT) await Promise.race(this.imports)
      this.importInstance(instanceIndex, peer)
    }
  }

  private markInstanceDone(i: number, instance: ManifestInstance): void {
    if (this.instanceDone[i] === 1) return
    this.instanceDone[i] = 1
    this.instancesLocal++
    this.bytesLocal += instance.size
  }

  private importInstance(instanceIndex: number, peer: string): void {
    const work = this.storeInstance(instanceIndex, peer).catch((error: unknown) => {
      const message = `instance ${instanceIndex + 1} could not be stored: ${(error as Error).message}`
      this.components.log.error({ event: 'fetch-store-failed', error: message }, message)
      this.init.failed(message)
    })
    this.imports.add(work)
    void work.finally(() => this.imports.delete(work))
  }

  private async storeInstance(instanceIndex: number, peer: string): Promise<void> {
    const { archive, versions } = this.components
    const { version } = this.init
    const { manifest, key } = version
    const instance = version.index.instances[instanceIndex] as ManifestInstance
    const pieces: Buffer[] = []
    const chunks = Array.from({ length: instance.chunkCount }, (_, c) => instance.firstChunk + c)
    let hashed = false
    for (const c of chunks) {
      const verified = this.verified.get(c) ?? { sealed: await archive.readChunk(manifest.chunkHashes[c] as string) }
      if ('instance' in verified) {
        pieces.push(verified.instance)
        hashed = true
        continue
      }
      const last = c === manifest.chunkHashes.length - 1
      pieces.push(decryptChunk(key, manifest.studyUid, manifest.versionId, c, last, verified.sealed))
      release(verified.sealed)
    }
    const file = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces)
    if (pieces.length > 1) for (const piece of pieces) release(piece)
    if (file.byteLength !== instance.size) {
      throw new Error(`instance ${instance.sopUid} is ${file.byteLength} bytes, not the manifest's ${instance.size}`)
    }
    // The archive refuses the file unless its SHA-256 is the manifest's: it hashes it, or takes the check's hash
    // of these very bytes (a chunk that is a whole instance).
    await archive.store(file, { type: 'peer', id: peer }, { sha256: instance.sha256, sha256Checked: hashed })
    // The store took a copy; what is left of the received frames is garbage (heap.ts).
    release(file)
    offHeapGarbage(instance.size)
    for (const c of chunks) this.verified.delete(c)
    if (instance.chunkCount > 1) await versions.forgetPartial(manifest.studyUid, manifest.versionId, chunks)
    this.markInstanceDone(instanceIndex, instance)
    if (this.complete()) this.init.done()
  }
}
