/**
 * Study versions a node knows: manifests, the key wraps it holds, content keys (sealed with the storage
 * key), kept in the `exchange` sublevel:
 *   m!STUDY                    the newest manifest of the study this node knows
 *   k!STUDY!VERSION            the content key, sealed at rest
 *   w!STUDY!VERSION!RECIPIENT  a key wrap (the ones this node made, and its own)
 *   p!STUDY!VERSION!INDEX      a verified chunk of an instance not yet whole, by its id (the archive keeps its bytes)
 *   f!STUDY                    a fetch asked for and not complete (resumed when the node starts), with who asked
 *
 * Chunk ciphertext is deterministic (content key, index), so a holder does not keep it: it encrypts chunk
 * `i` again from the instance in its archive when asked. Only chunks of an instance that spans several
 * chunks and is not whole yet are kept, so a restart resumes from them.
 *
 * Publishing a version (the origin): instances in reading order (every series' first images first), each
 * cut into chunks, encrypted once to learn the chunk hashes, and a signed manifest.
 */
import { randomBytes } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import {
  type KeyWrap,
  type ManifestIndex,
  type ManifestInstance,
  type StudyManifest,
  TRANSFER_CHUNK_PLAINTEXT
} from '../../protocol/exchange/manifest.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import type { Archive, InstanceRecord, StorageKey } from '../archive/index.ts'
import { sha256Hex } from '../hash.ts'
import { offHeapGarbage, release } from '../heap.ts'
import { type BinarySublevel, type Database, SYNCED_WRITE } from '../store/database.ts'
import { encryptChunk, newContentKey, openIndex, sealIndex, signManifest } from './crypto.ts'
import { Recent } from './recent.ts'

/** A version this node can read: manifest, content key, the opened index, and which instance each chunk is in. */
export interface OpenVersion {
  manifest: StudyManifest
  key: Buffer
  index: ManifestIndex
  instanceOfChunk: Uint32Array
}

const pad = (index: number): string => String(index).padStart(10, '0')
const utf8Json = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value))

export const chunkCountOf = (size: number): number => Math.max(1, Math.ceil(size / TRANSFER_CHUNK_PLAINTEXT))

/** Reading order: series by Series Number, images by Instance Number; then round robin over the series. */
export function readingOrder(instances: InstanceRecord[], seriesNumbers: Map<string, number>): InstanceRecord[] {
  const bySeries = new Map<string, InstanceRecord[]>()
  for (const instance of instances) {
    const list = bySeries.get(instance.seriesUid) ?? []
    list.push(instance)
    bySeries.set(instance.seriesUid, list)
  }
  const number = (value: unknown): number => {
    if (typeof value === 'number') return value
    const given = Number.isFinite(Number(value)) && value !== '' && value !== undefined
    return given ? Number(value) : Number.MAX_SAFE_INTEGER
  }
  const seriesNumber = (uid: string): number => seriesNumbers.get(uid) ?? 0
  const series = [...bySeries.entries()].sort(([a], [b]) => seriesNumber(a) - seriesNumber(b) || a.localeCompare(b))
  const instanceNumber = (instance: InstanceRecord): number => number(instance.attributes['00200013'])
  const byInstanceNumber = (x: InstanceRecord, y: InstanceRecord): number =>
    instanceNumber(x) - instanceNumber(y) || x.sopUid.localeCompare(y.sopUid)
  for (const [, list] of series) list.sort(byInstanceNumber)
  const ordered: InstanceRecord[] = []
  for (let round = 0; ordered.length < instances.length; round++) {
    for (const [, list] of series) {
      const instance = list[round]
      if (instance !== undefined) ordered.push(instance)
    }
  }
  return ordered
}

/** A version opened with its key: the index decrypted and checked against the manifest (throws if it does not hold). */
function openedVersion(manifest: StudyManifest, key: Buffer): OpenVersion {
  const index = openIndex(key, manifest)
  return { manifest, key, index, instanceOfChunk: chunkMap(index, manifest.chunkHashes.length) }
}

export function chunkMap(index: ManifestIndex, chunkCount: number): Uint32Array {
  const map = new Uint32Array(chunkCount)
  index.instances.forEach((instance, i) => {
    map.fill(i, instance.firstChunk, instance.firstChunk + instance.chunkCount)
  })
  return map
}

export class StudyVersions {
  private readonly store: BinarySublevel
  private readonly storageKey: StorageKey
  /** versions and newest manifests in use, so a chunk request costs no parse; bounded for sites with many studies */
  private readonly open_ = new Recent<string, OpenVersion>(64)
  private readonly latest = new Recent<string, StudyManifest>(64)

  constructor(db: Database, storageKey: StorageKey) {
    this.store = db.sublevel<string, Uint8Array>('exchange', { valueEncoding: 'view' })
    this.storageKey = storageKey
  }

  async manifest(studyUid: string): Promise<StudyManifest | undefined> {
    const cached = this.latest.get(studyUid)
    if (cached !== undefined) return cached
    const bytes = await this.store.get(`m!${studyUid}`)
    const manifest =
      bytes === undefined ? undefined : (JSON.parse(Buffer.from(bytes).toString('utf8')) as StudyManifest)
    if (manifest !== undefined) this.latest.set(studyUid, manifest)
    return manifest
  }

  /** The newest version of the study this node can read, or undefined. */
  async openLatest(studyUid: string): Promise<OpenVersion | undefined> {
    const manifest = await this.manifest(studyUid)
    return manifest === undefined ? undefined : await this.open(manifest)
  }

  /**
   * A version of the study this node can read and serve: the latest, or an earlier one still held open in
   * memory. A study that grows while a reader fetches it gets a new version; the reader finishes the one it is
   * fetching (its chunks are still served from here) and then fetches only the instances it lacks of the newer.
   */
  async openVersion(studyUid: string, versionId: string): Promise<OpenVersion | undefined> {
    const cached = this.open_.get(`${studyUid}!${versionId}`)
    if (cached !== undefined) return cached
    const manifest = await this.manifest(studyUid)
    return manifest?.versionId === versionId ? await this.open(manifest) : undefined
  }

  async open(manifest: StudyManifest): Promise<OpenVersion | undefined> {
    const id = `${manifest.studyUid}!${manifest.versionId}`
    const cached = this.open_.get(id)
    if (cached !== undefined) return cached
    const sealed = await this.store.get(`k!${id}`)
    if (sealed === undefined) return undefined
    const version = openedVersion(manifest, this.storageKey.open(sealed, `content-key:${id}`))
    this.open_.set(id, version)
    return version
  }

  /**
   * Opens a version from a peer with its content key, checks its index against the manifest (instances,
   * sizes, chunk counts: a MalformedMessageError says how they differ), and only then records it. Nothing
   * of a version whose index does not hold is stored.
   */
  async adopt(manifest: StudyManifest, key: Buffer, wraps: KeyWrap[]): Promise<OpenVersion> {
    const version = openedVersion(manifest, key)
    await this.remember(manifest, key, wraps)
    this.open_.set(`${manifest.studyUid}!${manifest.versionId}`, version)
    return version
  }

  /**
   * Whether `manifest` would become the study's latest version here: when there is none, and otherwise
   * only a later version of the same origin. A member cannot displace a study's versions with its own,
   * whatever date it puts on them (the origin re-publishes a study that grew; no one else does).
   */
  async wouldSupersede(manifest: StudyManifest): Promise<boolean> {
    const current = await this.manifest(manifest.studyUid)
    return (
      current === undefined ||
      current.versionId === manifest.versionId ||
      (current.origin === manifest.origin && Date.parse(manifest.createdAt) > Date.parse(current.createdAt))
    )
  }

  /**
   * Records a version this node can read (its own, or one whose key it unwrapped). It becomes the latest
   * when `wouldSupersede` says so, or when this node published it (`own`).
   */
  async remember(manifest: StudyManifest, key: Buffer, wraps: KeyWrap[], own = false): Promise<void> {
    const id = `${manifest.studyUid}!${manifest.versionId}`
    const newer = own || (await this.wouldSupersede(manifest))
    await this.store.batch([
      ...(newer ? [{ type: 'put' as const, key: `m!${manifest.studyUid}`, value: utf8Json(manifest) }] : []),
      { type: 'put' as const, key: `k!${id}`, value: this.storageKey.seal(key, `content-key:${id}`) },
      ...wraps.map(wrap => ({ type: 'put' as const, key: `w!${id}!${wrap.recipient}`, value: utf8Json(wrap) }))
    ])
    if (newer) this.latest.delete(manifest.studyUid)
  }

  async addWraps(wraps: KeyWrap[]): Promise<void> {
    const key = (wrap: KeyWrap): string => `w!${wrap.studyUid}!${wrap.versionId}!${wrap.recipient}`
    await this.store.batch(wraps.map(wrap => ({ type: 'put' as const, key: key(wrap), value: utf8Json(wrap) })))
  }

  async wrapFor(studyUid: string, versionId: string, recipient: string): Promise<KeyWrap | undefined> {
    const bytes = await this.store.get(`w!${studyUid}!${versionId}!${recipient}`)
    return bytes === undefined ? undefined : (JSON.parse(Buffer.from(bytes).toString('utf8')) as KeyWrap)
  }

  async recipients(studyUid: string, versionId: string): Promise<PeerIdString[]> {
    const prefix = `w!${studyUid}!${versionId}!`
    const list: PeerIdString[] = []
    for await (const key of this.store.keys({ gt: prefix, lt: `${prefix.slice(0, -1)}"` })) {
      list.push(key.slice(prefix.length) as PeerIdString)
    }
    return list
  }

  /** Chunks kept for instances not yet whole: index -> chunk hash. */
  async partialChunks(studyUid: string, versionId: string): Promise<Map<number, string>> {
    const prefix = `p!${studyUid}!${versionId}!`
    const map = new Map<number, string>()
    for await (const [key, value] of this.store.iterator({ gt: prefix, lt: `${prefix.slice(0, -1)}"` })) {
      map.set(Number(key.slice(prefix.length)), Buffer.from(value).toString('utf8'))
    }
    return map
  }

  /** Records, synced, that the archive keeps chunk `index` of a version (under `id`, its hash) for a fetch. */
  async keepPartial(studyUid: string, versionId: string, index: number, id: string): Promise<void> {
    await this.store.put(`p!${studyUid}!${versionId}!${pad(index)}`, Buffer.from(id), SYNCED_WRITE)
  }

  async markFetching(studyUid: string, actor: unknown): Promise<void> {
    await this.store.put(`f!${studyUid}`, utf8Json(actor))
  }

  async fetchDone(studyUid: string): Promise<void> {
    await this.store.del(`f!${studyUid}`)
  }

  /** Fetches asked for and not complete: study UID -> who asked. */
  async unfinishedFetches(): Promise<Map<string, unknown>> {
    const map = new Map<string, unknown>()
    for await (const [key, value] of this.store.iterator({ gt: 'f!', lt: 'f"' })) {
      map.set(key.slice(2), JSON.parse(Buffer.from(value).toString('utf8')))
    }
    return map
  }

  async forgetPartial(studyUid: string, versionId: string, indices: number[]): Promise<void> {
    if (indices.length === 0) return
    const key = (index: number): string => `p!${studyUid}!${versionId}!${pad(index)}`
    await this.store.batch(indices.map(index => ({ type: 'del' as const, key: key(index) })))
  }

  /**
   * Publishes a new version of a study from the archive: reads every instance once, encrypts its chunks to
   * learn their hashes (nothing is written but the manifest and the sealed key), signs the manifest.
   */
  async publish(
    archive: Pick<Archive, 'instancesOf' | 'seriesOf' | 'read'>,
    studyUid: string,
    origin: { peerId: PeerIdString; privateKey: PrivateKey; consortiumId: string },
    onProgress?: (done: number, total: number) => void
  ): Promise<OpenVersion> {
    const records: InstanceRecord[] = []
    for await (const instance of archive.instancesOf(studyUid)) records.push(instance)
    if (records.length === 0) throw new Error(`study ${studyUid} has no instances in this node's archive`)
    const seriesNumbers = new Map<string, number>()
    for await (const series of archive.seriesOf(studyUid)) {
      seriesNumbers.set(series.seriesUid, Number(series.attributes['00200011'] ?? 0) || 0)
    }
    const ordered = readingOrder(records, seriesNumbers)
    const key = newContentKey()
    const versionId = randomBytes(16).toString('hex')
    const total = ordered.reduce((sum, instance) => sum + chunkCountOf(instance.size), 0)
    const chunkHashes: string[] = []
    const chunkSizes: number[] = []
    const instances: ManifestInstance[] = []
    let bytes = 0
    for (const [n, record] of ordered.entries()) {
      const file = await archive.read(record)
      const firstChunk = chunkHashes.length
      const count = chunkCountOf(file.byteLength)
      for (let c = 0; c < count; c++) {
        const index = firstChunk + c
        const piece = file.subarray(c * TRANSFER_CHUNK_PLAINTEXT, (c + 1) * TRANSFER_CHUNK_PLAINTEXT)
        const sealed = encryptChunk(key, studyUid, versionId, index, index === total - 1, piece)
        chunkHashes.push(sha256Hex(sealed))
        chunkSizes.push(sealed.byteLength)
        release(sealed)
      }
      const { sopUid, seriesUid, sha256 } = record
      const size = file.byteLength
      instances.push({ sopUid, seriesUid, size, sha256, firstChunk, chunkCount: count })
      // The file is this loop's own (the archive's read), its transfer chunks too; what is left of the read is
      // garbage (heap.ts).
      release(file)
      offHeapGarbage(size)
      bytes += size
      onProgress?.(n + 1, ordered.length)
    }
    const index: ManifestIndex = { instances }
    const manifest = await signManifest(origin.privateKey, {
      v: 1,
      consortiumId: origin.consortiumId,
      studyUid,
      versionId,
      origin: origin.peerId,
      createdAt: new Date().toISOString(),
      instanceCount: instances.length,
      bytes,
      chunkHashes,
      chunkSizes,
      sealedIndex: sealIndex(key, studyUid, versionId, index)
    })
    await this.remember(manifest, key, [], true)
    this.latest.delete(studyUid)
    const version = { manifest, key, index, instanceOfChunk: chunkMap(index, total) }
    this.open_.set(`${studyUid}!${versionId}`, version)
    return version
  }
}
