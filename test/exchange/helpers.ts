/**
 * The exchange's boundaries stood in for, in-process: members with real keys, study versions made as an
 * origin makes them, archives and version stores in memory (memory-helpers.ts), a network of in-memory libp2p
 * stream pairs that hands each dialled stream to the other member's handler, and a log whose lines a test can read.
 */
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import { type Logger, pino } from 'pino'
import { encryptChunk, sealIndex, signKeyWrap, signManifest, wrapContentKey } from '../../node/exchange/crypto.ts'
import { StudyFetch, type StudyFetchInit } from '../../node/exchange/fetch.ts'
import { Holdings } from '../../node/exchange/holdings.ts'
import { ExchangeServer } from '../../node/exchange/serve.ts'
import { VersionCheck } from '../../node/exchange/verify.ts'
import { chunkCountOf, chunkMap, type OpenVersion } from '../../node/exchange/versions.ts'
import { sha256Hex } from '../../node/hash.ts'
import type { Identity } from '../../node/identity/keys.ts'
import { generateX25519 } from '../../node/membership/crypto.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { encodeLength } from '../../node/p2p/wire.ts'
import { type KeyWrap, type ManifestIndex, TRANSFER_CHUNK_PLAINTEXT } from '../../protocol/exchange/manifest.ts'
import { CHUNKS_PROTOCOL_2 } from '../../protocol/exchange/chunks.ts'
import { CHUNKS_PROTOCOL, MANIFEST_PROTOCOL } from '../../protocol/exchange/messages.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import { MemoryArchive, MemoryVersions } from './memory-helpers.ts'

export const STUDY = '1.2.826.0.1.3680043.8.498.42'
export const CONSORTIUM = Buffer.alloc(32, 7).toString('base64url')

/** A member's keys, as `loadIdentity` gives them. */
export async function member(): Promise<Identity> {
  const privateKey = await generateKeyPair('Ed25519')
  const wrap = generateX25519()
  return {
    privateKey,
    peerId: peerIdFromPrivateKey(privateKey).toString() as PeerIdString,
    wrapPrivateKey: wrap.privateKey,
    wrapPublicKey: wrap.publicKeyRaw
  }
}

/** A study version of `files` by `origin`, as `StudyVersions.publish` makes one (instances in the given order). */
export async function version(
  origin: Identity,
  files: Buffer[],
  options: { studyUid?: string; createdAt?: string } = {}
): Promise<OpenVersion> {
  const studyUid = options.studyUid ?? STUDY
  const key = randomBytes(32)
  const versionId = randomBytes(16).toString('hex')
  const total = files.reduce((sum, file) => sum + chunkCountOf(file.byteLength), 0)
  const chunkHashes: string[] = []
  const chunkSizes: number[] = []
  const index: ManifestIndex = { instances: [] }
  for (const [i, file] of files.entries()) {
    const firstChunk = chunkHashes.length
    const count = chunkCountOf(file.byteLength)
    for (let c = 0; c < count; c++) {
      const piece = file.subarray(c * TRANSFER_CHUNK_PLAINTEXT, (c + 1) * TRANSFER_CHUNK_PLAINTEXT)
      const sealed = encryptChunk(key, studyUid, versionId, firstChunk + c, firstChunk + c === total - 1, piece)
      chunkHashes.push(sha256Hex(sealed))
      chunkSizes.push(sealed.byteLength)
    }
    const sopUid = `${studyUid}.${i + 1}`
    const entry = { sopUid, seriesUid: `${studyUid}.0`, size: file.byteLength, sha256: sha256Hex(file) }
    index.instances.push({ ...entry, firstChunk, chunkCount: count })
  }
  const manifest = await signManifest(origin.privateKey, {
    v: 1,
    consortiumId: CONSORTIUM,
    studyUid,
    versionId,
    origin: origin.peerId,
    createdAt: options.createdAt ?? new Date().toISOString(),
    instanceCount: files.length,
    bytes: files.reduce((sum, file) => sum + file.byteLength, 0),
    chunkHashes,
    chunkSizes,
    sealedIndex: sealIndex(key, studyUid, versionId, index)
  })
  return { manifest, key, index, instanceOfChunk: chunkMap(index, total) }
}

/** A key wrap of `version`'s key for `recipient`, made and signed by `by`. */
export async function wrapFor(version: OpenVersion, recipient: Identity, by: Identity): Promise<KeyWrap> {
  const { studyUid, versionId } = version.manifest
  const { ephemeralKey, wrappedKey } = wrapContentKey(version.key, recipient.wrapPublicKey, studyUid, versionId)
  const createdAt = new Date().toISOString()
  return await signKeyWrap(by.privateKey, {
    v: 1,
    studyUid,
    versionId,
    recipient: recipient.peerId,
    ephemeralKey,
    wrappedKey,
    wrappedBy: by.peerId,
    createdAt
  })
}

export { MemoryArchive, MemoryVersions } from './memory-helpers.ts'

/**
 * A member holding `files` of `latest`: its manifest and chunks handlers (both chunks protocols, or only
 * 1.0.0 as a member on an older radmesh), each answered by a real ExchangeServer.
 */
export function holder(
  latest: OpenVersion,
  files: Buffer[],
  options: { wraps?: KeyWrap[]; corrupt?: boolean; version1Only?: boolean } = {}
): Record<string, Handler> {
  const archive = new MemoryArchive(latest, files)
  const versions = new MemoryVersions(latest)
  for (const wrap of options.wraps ?? []) versions.wraps.set(wrap.recipient, wrap)
  const holdings = new Holdings({ archive, versions })
  if (options.corrupt === true) {
    const requested = holdings.requested.bind(holdings)
    const flipped = (bytes: Buffer): Buffer => {
      const corrupted = Buffer.from(bytes)
      corrupted[0] = (corrupted[0] as number) ^ 0xff
      return corrupted
    }
    holdings.requested = async request => {
      const sealed = await requested(request)
      return sealed === undefined ? undefined : flipped(sealed)
    }
    const requestedOnWire = holdings.requestedOnWire.bind(holdings)
    holdings.requestedOnWire = async (request, pack) => {
      const wire = await requestedOnWire(request, pack)
      return wire === undefined ? undefined : { form: wire.form, bytes: flipped(wire.bytes) }
    }
  }
  const server = new ExchangeServer(
    {
      versions,
      holdings,
      audit: { append: async () => undefined as never },
      penalties: new PeerPenalties(),
      log: pino({ level: 'silent' })
    },
    { timeoutMs: 5000 }
  )
  const handlers = { [MANIFEST_PROTOCOL]: server.handleManifest, [CHUNKS_PROTOCOL]: server.handleChunks }
  return options.version1Only === true ? handlers : { ...handlers, [CHUNKS_PROTOCOL_2]: server.handleChunks2 }
}

export interface Reader {
  fetch: StudyFetch
  archive: MemoryArchive
  versions: MemoryVersions
  penalties: PeerPenalties
  lines: Array<Record<string, unknown>>
  audits: unknown[]
}

/**
 * A reader's fetch of STUDY from the members in `holders`, over in-memory streams. Its archive knows the
 * files of `known` versions; every member is a member; what it checks of what they send is checked for real.
 */
export function reader(
  self: Identity,
  holders: Record<string, Record<string, Handler>>,
  known: OpenVersion[],
  init: Partial<StudyFetchInit> = {},
  stores: { archive?: MemoryArchive; versions?: MemoryVersions } = {}
): Reader {
  const { log, lines } = readableLog()
  const penalties = new PeerPenalties()
  const archive = stores.archive ?? new MemoryArchive(known)
  const versions = stores.versions ?? new MemoryVersions()
  const audits: unknown[] = []
  const registry = { isMember: () => true }
  const check = new VersionCheck({ identity: self, consortiumId: CONSORTIUM, registry, penalties, versions, log })
  const fetch = new StudyFetch(
    {
      libp2p: network(self.peerId, holders) as never,
      registry,
      penalties,
      archive,
      versions,
      check,
      audit: {
        append: async (entry: unknown) => {
          audits.push(entry)
          return undefined as never
        }
      },
      log
    },
    { studyUid: STUDY, actor: { type: 'peer', id: self.peerId }, ...init }
  )
  return { fetch, archive, versions, penalties, lines, audits }
}

/** A log whose lines (parsed) a test reads. */
export function readableLog(level = 'info'): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    }
  })
  return { log: pino({ level }, sink), lines }
}

export type Handler = (stream: Stream, connection: Connection) => Promise<void>

export const connectionFrom = (peer: string): Connection =>
  ({ remotePeer: { toString: () => peer } }) as unknown as Connection

/**
 * What one member's libp2p is to the exchange: connections to the other members, and dialling one of their
 * protocols (the first of a list that the member speaks, as libp2p negotiates) hands the far end of an
 * in-memory stream pair to that member's handler.
 */
export function network(self: string, handlers: Record<string, Record<string, Handler>>) {
  const open = new Set(Object.keys(handlers))
  return {
    peerId: { toString: () => self },
    getConnections: () => [...open].map(peer => ({ status: 'open', remotePeer: { toString: () => peer } })),
    dialProtocol: async (peerId: { toString(): string }, protocols: string | string[]): Promise<Stream> => {
      const spoken = handlers[peerId.toString()] ?? {}
      const protocol = [protocols].flat().find(one => spoken[one] !== undefined)
      const handler = protocol === undefined ? undefined : spoken[protocol]
      if (protocol === undefined || handler === undefined || !open.has(peerId.toString())) {
        throw new Error(`${peerId.toString()} does not speak ${[protocols].flat().join(' or ')}`)
      }
      const [local, remote] = await streamPair()
      local.protocol = protocol
      remote.protocol = protocol
      void handler(remote, connectionFrom(self))
      return local
    },
    addEventListener: () => {},
    removeEventListener: () => {}
  }
}

/** Prefixes `body` with its length, as lpStream does. */
export const framed = (body: Uint8Array): Uint8Array => {
  const prefix = encodeLength(body.byteLength)
  const out = new Uint8Array(prefix.byteLength + body.byteLength)
  out.set(prefix)
  out.set(body, prefix.byteLength)
  return out
}

/** The length prefix at the start of `bytes` (unsigned varint), and how many bytes it took. */
export function decodeLength(bytes: Uint8Array): { length: number; bytesRead: number } {
  let length = 0
  for (let i = 0, scale = 1; i < bytes.byteLength; i++, scale *= 0x80) {
    const byte = bytes[i] as number
    length += (byte & 0x7f) * scale
    if (byte < 0x80) return { length, bytesRead: i + 1 }
  }
  throw new Error('a length prefix cut short')
}

/** `promise`, or an error once `ms` have passed. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`${what}: still running after ${ms} ms`))
      }, ms)
    })
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}
