/**
 * The exchange's archive and version store stood in for in memory (re-exported by helpers.ts): files stored
 * whole, known by the versions whose instances they are; one version with its wraps and the chunks a fetch keeps.
 */
import type { Archive, InstanceRecord } from '../../node/archive/index.ts'
import { openIndex } from '../../node/exchange/crypto.ts'
import { chunkMap, type OpenVersion } from '../../node/exchange/versions.ts'
import { sha256Hex } from '../../node/hash.ts'
import type { KeyWrap, StudyManifest } from '../../protocol/exchange/manifest.ts'

/** Instance records for files stored in a `MemoryArchive`, named by the index of a version they are in. */
const record = (versions: OpenVersion[], sha256: string): InstanceRecord | undefined => {
  const version = versions.find(known => known.index.instances.some(entry => entry.sha256 === sha256))
  const instance = version?.index.instances.find(entry => entry.sha256 === sha256)
  if (version === undefined || instance === undefined) return undefined
  return {
    studyUid: version.manifest.studyUid,
    seriesUid: instance.seriesUid,
    sopUid: instance.sopUid,
    sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    size: instance.size,
    sha256,
    chunks: [],
    datasetOffset: 0,
    executablePreamble: false,
    attributes: {},
    storedAt: new Date().toISOString()
  }
}

/** An archive in memory: files stored whole (known by the version whose instances they are), chunks kept. */
type ArchiveForExchange = Pick<
  Archive,
  'instance' | 'instancesOf' | 'read' | 'store' | 'keepChunk' | 'hasChunk' | 'readChunk'
>

export class MemoryArchive implements ArchiveForExchange {
  readonly files = new Map<string, Buffer>()
  readonly kept = new Map<string, Buffer>()
  readonly stored: Array<{ sopUid: string; actor: unknown }> = []
  private readonly versions: OpenVersion[]

  /** `versions`: the versions whose instances may be stored (it knows a file by them) */
  constructor(versions: OpenVersion | OpenVersion[], files: Buffer[] = []) {
    this.versions = Array.isArray(versions) ? versions : [versions]
    for (const file of files) this.put(file)
  }

  private put(file: Buffer): InstanceRecord {
    const found = record(this.versions, sha256Hex(file))
    if (found === undefined) throw new Error("a file that is none of the version's instances")
    this.files.set(found.sopUid, file)
    return found
  }

  async instance(sopUid: string): Promise<InstanceRecord | undefined> {
    const file = this.files.get(sopUid)
    return file === undefined ? undefined : record(this.versions, sha256Hex(file))
  }

  async *instancesOf(studyUid: string): AsyncGenerator<InstanceRecord> {
    for (const file of this.files.values()) {
      const found = record(this.versions, sha256Hex(file))
      if (found?.studyUid === studyUid) yield found
    }
  }

  /** A copy, as the archive's read is: the caller owns it, and may release it (heap.ts). */
  async read(instance: InstanceRecord): Promise<Buffer> {
    return Buffer.from(this.files.get(instance.sopUid) as Buffer)
  }

  async store(file: Uint8Array, actor: unknown): Promise<Awaited<ReturnType<Archive['store']>>> {
    const instance = this.put(Buffer.from(file))
    this.stored.push({ sopUid: instance.sopUid, actor })
    return { outcome: 'stored', instance }
  }

  async keepChunk(bytes: Uint8Array): Promise<string> {
    const id = sha256Hex(bytes)
    this.kept.set(id, Buffer.from(bytes))
    return id
  }

  async hasChunk(id: string): Promise<boolean> {
    return this.kept.has(id)
  }

  async readChunk(id: string): Promise<Buffer> {
    const chunk = this.kept.get(id)
    if (chunk === undefined) throw new Error(`chunk ${id} is not kept`)
    return Buffer.from(chunk)
  }
}

/** A version store in memory holding one version, with a wrap per recipient and the chunks a fetch keeps. */
export class MemoryVersions {
  latest: OpenVersion | undefined
  readonly wraps = new Map<string, KeyWrap>()
  readonly partial = new Map<number, string>()
  /** earlier versions still held open */
  readonly earlier: OpenVersion[] = []

  constructor(latest?: OpenVersion) {
    this.latest = latest
  }

  async manifest(studyUid: string): Promise<OpenVersion['manifest'] | undefined> {
    return this.latest?.manifest.studyUid === studyUid ? this.latest.manifest : undefined
  }

  async open(manifest: OpenVersion['manifest']): Promise<OpenVersion | undefined> {
    return this.latest?.manifest.versionId === manifest.versionId ? this.latest : undefined
  }

  async openLatest(studyUid: string): Promise<OpenVersion | undefined> {
    return this.latest?.manifest.studyUid === studyUid ? this.latest : undefined
  }

  /** The latest, or one of `earlier` (versions held open after a newer one came, as StudyVersions does). */
  async openVersion(studyUid: string, versionId: string): Promise<OpenVersion | undefined> {
    return [this.latest, ...this.earlier].find(
      version => version?.manifest.studyUid === studyUid && version.manifest.versionId === versionId
    )
  }

  async wrapFor(_studyUid: string, _versionId: string, recipient: string): Promise<KeyWrap | undefined> {
    return this.wraps.get(recipient)
  }

  async addWraps(wraps: KeyWrap[]): Promise<void> {
    for (const wrap of wraps) this.wraps.set(wrap.recipient, wrap)
  }

  async partialChunks(): Promise<Map<number, string>> {
    return new Map(this.partial)
  }

  async keepPartial(_studyUid: string, _versionId: string, index: number, id: string): Promise<void> {
    this.partial.set(index, id)
  }

  async forgetPartial(_studyUid: string, _versionId: string, indices: number[]): Promise<void> {
    for (const index of indices) this.partial.delete(index)
  }

  /** As StudyVersions.adopt: the index opened and checked, then the version kept (the latest unless older). */
  async adopt(manifest: StudyManifest, key: Buffer, wraps: KeyWrap[]): Promise<OpenVersion> {
    const index = openIndex(key, manifest)
    const opened = { manifest, key, index, instanceOfChunk: chunkMap(index, manifest.chunkHashes.length) }
    const latestAt = this.latest === undefined ? undefined : Date.parse(this.latest.manifest.createdAt)
    if (latestAt === undefined || Date.parse(manifest.createdAt) > latestAt) this.latest = opened
    await this.addWraps(wraps)
    return opened
  }
}
