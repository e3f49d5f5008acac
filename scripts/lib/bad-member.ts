/**
 * A member gone bad, in the calling process: a real radmesh libp2p host (member handshake, Yamux, the
 * gater) with a real certificate, admitted to the consortium on the spot, so it passes the handshake like
 * any member. It sends whatever bytes it is given on any `/radmesh/*` protocol, raw (length prefixes
 * included, so they can lie), and records what the target sends it: its sync messages, its revocation lists.
 * The e2e tests and the p2p fuzzer (scripts/fuzz/p2p.ts) use it; a fresh one is admitted whenever the
 * target bans the last.
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import {
  encryptChunk,
  newContentKey,
  sealIndex,
  signKeyWrap,
  signManifest,
  wrapContentKey
} from '../../node/exchange/crypto.ts'
import type { Identity } from '../../node/identity/keys.ts'
import { admit, openConsortium } from '../../node/membership/consortium.ts'
import { generateX25519 } from '../../node/membership/crypto.ts'
import { MembershipRegistry } from '../../node/membership/registry.ts'
import { trustFrom } from '../../node/membership/trust.ts'
import { createHost, type RadmeshHost } from '../../node/p2p/host.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { encodeLength, messageStream } from '../../node/p2p/wire.ts'
import { openDatabase } from '../../node/store/database.ts'
import {
  decodeSyncMessage,
  MAX_SYNC_MESSAGE_BYTES,
  SYNC_PROTOCOL,
  type SyncMessage
} from '../../protocol/collab/sync.ts'
import {
  type KeyWrap,
  type ManifestIndex,
  type StudyManifest,
  TRANSFER_CHUNK_PLAINTEXT
} from '../../protocol/exchange/manifest.ts'
import { asPeerIdString, type PeerIdString, type Role } from '../../protocol/ids.ts'
import type { MemberCertificate } from '../../protocol/membership/certificate.ts'
import { REVOCATIONS_PROTOCOL } from '../../protocol/membership/revocations.ts'

/** What became of bytes sent on a stream: what came back, and how the target ended the stream. */
export interface Exchanged {
  /** the bytes the target wrote back (raw, length prefixes included), up to `maxReply` */
  reply: Uint8Array
  /** reset: the target reset the stream; closed: it closed its side; open: neither within the wait */
  ended: 'reset' | 'closed' | 'open'
  /** whether sending failed (the target reset the stream before everything was sent) */
  sendFailed: boolean
  ms: number
  /** the stream, when kept open */
  stream?: Stream
}

export interface SendOptions {
  /** pause between chunks (ms) */
  gapMs?: number
  /** close the write side after the last chunk (default true); false leaves the stream hanging */
  close?: boolean
  /** how long to wait for the target to answer or end the stream */
  waitMs: number
  /** stop waiting once this many reply bytes came (default 64 KiB) */
  maxReply?: number
  /** stop waiting once the reply satisfies this */
  enough?: (reply: Uint8Array) => boolean
  /** leave the stream as it is afterwards (the caller ends it), instead of resetting it */
  keepOpen?: boolean
}

/** Prefixes `body` with its length, as lpStream does. */
export const framed = (body: Uint8Array): Uint8Array => {
  const prefix = encodeLength(body.byteLength)
  const out = new Uint8Array(prefix.byteLength + body.byteLength)
  out.set(prefix)
  out.set(body, prefix.byteLength)
  return out
}

export class BadMember {
  readonly identity: Identity
  readonly certificate: MemberCertificate
  readonly host: RadmeshHost
  readonly peerId: string
  /** sync messages the target sent this member, in order (bounded: the oldest are dropped) */
  readonly synced: SyncMessage[] = []
  /** revocation lists the target sent, raw */
  readonly revocationLists: Uint8Array[] = []
  private target: Multiaddr | undefined
  private targetPeer: string | undefined
  private readonly dir: string

  private constructor(identity: Identity, certificate: MemberCertificate, host: RadmeshHost, dir: string) {
    this.identity = identity
    this.certificate = certificate
    this.host = host
    this.peerId = identity.peerId
    this.dir = dir
  }

  /** Mints an identity, has the consortium in `consortiumDir` admit it, and starts its host (not connected yet). */
  static async admit(consortiumDir: string, dir: string, options: { name: string; role: Role }): Promise<BadMember> {
    const privateKey = await generateKeyPair('Ed25519')
    const wrap = generateX25519()
    const peerId = asPeerIdString(peerIdFromPrivateKey(privateKey).toString())
    const identity: Identity = { privateKey, peerId, wrapPrivateKey: wrap.privateKey, wrapPublicKey: wrap.publicKeyRaw }
    const consortium = await openConsortium(consortiumDir)
    const certificate = await admit(consortium, {
      v: 1,
      peerId,
      name: options.name,
      role: options.role,
      subspecialties: [],
      wrapKey: wrap.publicKeyRaw,
      requestedAt: new Date().toISOString()
    })
    const home = join(dir, peerId)
    await fs.mkdir(home, { recursive: true })
    const db = await openDatabase(join(home, 'db'))
    const registry = new MembershipRegistry(trustFrom(consortium.info), certificate, db)
    const log = pino({ level: 'silent' })
    const penalties = new PeerPenalties()
    const host = await createHost({ identity, registry, penalties, listen: [], mdns: false, agentName: 'bad', log })
    const member = new BadMember(identity, certificate, host, home)
    await host.handle(SYNC_PROTOCOL, member.onSync, { maxInboundStreams: 8 })
    await host.handle(REVOCATIONS_PROTOCOL, member.onRevocations, { maxInboundStreams: 8 })
    await host.start()
    return member
  }

  async connect(target: string, timeoutMs = 10_000): Promise<void> {
    this.target = multiaddr(target)
    this.targetPeer = target.split('/p2p/')[1]
    await this.host.dial(this.target, { signal: AbortSignal.timeout(timeoutMs) })
  }

  /** Whether this member has an open connection to the target. */
  connected(): boolean {
    return this.host.getConnections().some(c => c.status === 'open' && c.remotePeer.toString() === this.targetPeer)
  }

  /** Opens a stream of `protocol` to the target. */
  async open(protocol: string, timeoutMs = 5_000): Promise<Stream> {
    if (this.target === undefined) throw new Error('connect first')
    return await this.host.dialProtocol(this.target, protocol, { signal: AbortSignal.timeout(timeoutMs) })
  }

  /**
   * Sends `chunks` on a new stream of `protocol` and waits for the target to answer or end the stream;
   * the stream is reset afterwards whatever happened.
   */
  async send(protocol: string, chunks: Uint8Array[], options: SendOptions): Promise<Exchanged> {
    const started = performance.now()
    const stream = await this.open(protocol)
    const received: Uint8Array[] = []
    let bytes = 0
    const maxReply = options.maxReply ?? 64 * 1024
    let ended: Exchanged['ended'] = 'open'
    let wake: () => void = () => {}
    const settled = new Promise<void>(resolve => {
      wake = resolve
    })
    const reply = (): Uint8Array => Buffer.concat(received)
    stream.addEventListener('message', event => {
      if (bytes >= maxReply) return
      const data = event.data.subarray()
      received.push(data)
      bytes += data.byteLength
      if (bytes >= maxReply || options.enough?.(reply()) === true) wake()
    })
    stream.addEventListener('close', event => {
      ended = event.error !== undefined && !event.local ? 'reset' : 'closed'
      wake()
    })
    stream.addEventListener('remoteCloseWrite', () => {
      if (ended === 'open') ended = 'closed'
      wake()
    })
    let sendFailed = false
    try {
      for (const [i, chunk] of chunks.entries()) {
        if (i > 0 && (options.gapMs ?? 0) > 0) await new Promise(resolve => setTimeout(resolve, options.gapMs))
        if (stream.status !== 'open') throw new Error('the target ended the stream')
        if (!stream.send(chunk)) await waitForDrain(stream, options.waitMs)
      }
      if (options.close !== false) await stream.close({ signal: AbortSignal.timeout(options.waitMs) })
    } catch {
      sendFailed = true
    }
    const timer = setTimeout(wake, options.waitMs)
    await settled
    clearTimeout(timer)
    if (options.keepOpen === true) return { reply: reply(), ended, sendFailed, ms: performance.now() - started, stream }
    stream.abort(new Error('done'))
    return { reply: reply(), ended, sendFailed, ms: performance.now() - started }
  }

  async stop(): Promise<void> {
    await Promise.resolve(this.host.stop()).catch(() => {})
    await fs.rm(this.dir, { recursive: true, force: true }).catch(() => {})
  }

  private readonly onSync = async (stream: Stream): Promise<void> => {
    const limit = MAX_SYNC_MESSAGE_BYTES
    const lp = messageStream(stream, { maxDataLength: limit, maxBufferSize: limit, messageTimeoutMs: 60_000 })
    try {
      for (let bytes = await lp.read(); bytes !== undefined; bytes = await lp.read()) {
        this.synced.push(decodeSyncMessage(bytes))
        if (this.synced.length > 64) this.synced.shift()
      }
    } catch {
      stream.abort(new Error('done'))
    }
  }

  private readonly onRevocations = async (stream: Stream): Promise<void> => {
    const lp = messageStream(stream, { maxDataLength: 4 * 1024 * 1024, messageTimeoutMs: 10_000 })
    try {
      const bytes = await lp.read()
      if (bytes !== undefined) this.revocationLists.push(bytes)
      if (this.revocationLists.length > 8) this.revocationLists.shift()
      await stream.close()
    } catch {
      stream.abort(new Error('done'))
    }
  }
}

async function waitForDrain(stream: Stream, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error('the target took nothing'))
    }, timeoutMs)
    const done = (): void => {
      clearTimeout(timer)
      stream.removeEventListener('drain', done)
      stream.removeEventListener('close', done)
      resolve()
    }
    stream.addEventListener('drain', done)
    stream.addEventListener('close', done)
  })
}

export interface MadeVersion {
  manifest: StudyManifest
  wrap: KeyWrap
  key: Buffer
  chunks: Buffer[]
}

/**
 * A study version made by `author` (as origin and wrapper) of `files`, with its key wrapped for
 * `recipient`: what a member that publishes a study sends. `index` may change the index before it is
 * sealed (to make one that lies); `createdAt` may date it anywhere.
 */
export async function makeVersion(
  author: Identity,
  options: {
    consortiumId: string
    studyUid: string
    recipient: string
    recipientWrapKey: string
    files?: Buffer[]
    createdAt?: string
    index?: (index: ManifestIndex) => ManifestIndex
  }
): Promise<MadeVersion> {
  const files = options.files ?? [randomBytes(2000), randomBytes(3000)]
  const key = newContentKey()
  const versionId = randomBytes(16).toString('hex')
  const plain: Buffer[] = []
  const index: ManifestIndex = { instances: [] }
  for (const [i, file] of files.entries()) {
    const firstChunk = plain.length
    for (let at = 0; at === 0 || at < file.byteLength; at += TRANSFER_CHUNK_PLAINTEXT) {
      plain.push(file.subarray(at, at + TRANSFER_CHUNK_PLAINTEXT))
    }
    const sha256 = createHash('sha256').update(file).digest('hex')
    const sopUid = `${options.studyUid}.${i + 1}`
    const seriesUid = `${options.studyUid}.0`
    const chunkCount = plain.length - firstChunk
    index.instances.push({ sopUid, seriesUid, size: file.byteLength, sha256, firstChunk, chunkCount })
  }
  const last = plain.length - 1
  const chunks = plain.map((piece, i) => encryptChunk(key, options.studyUid, versionId, i, i === last, piece))
  const sealed = options.index?.(index) ?? index
  const manifest = await signManifest(author.privateKey, {
    v: 1,
    consortiumId: options.consortiumId,
    studyUid: options.studyUid,
    versionId,
    origin: author.peerId,
    createdAt: options.createdAt ?? new Date().toISOString(),
    instanceCount: index.instances.length,
    bytes: files.reduce((sum, file) => sum + file.byteLength, 0),
    chunkHashes: chunks.map(chunk => createHash('sha256').update(chunk).digest('hex')),
    chunkSizes: chunks.map(chunk => chunk.byteLength),
    sealedIndex: sealIndex(key, options.studyUid, versionId, sealed)
  })
  const parts = wrapContentKey(key, options.recipientWrapKey, options.studyUid, versionId)
  const wrap = await signKeyWrap(author.privateKey, {
    v: 1,
    studyUid: options.studyUid,
    versionId,
    recipient: options.recipient as PeerIdString,
    ...parts,
    wrappedBy: author.peerId,
    createdAt: new Date().toISOString()
  })
  return { manifest, wrap, key, chunks }
}
