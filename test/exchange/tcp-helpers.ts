/**
 * The exchange over real libp2p (TCP, Noise, Yamux) in-process: a holder serving a study version behind a
 * counting, optionally rate-limited proxy, and a reader's fetch from the holders it dialled, stored in memory.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { pino } from 'pino'
import * as assert from 'uvu/assert'
import type { PackChoice } from '../../node/exchange/pack-choice.ts'
import { StudyFetch } from '../../node/exchange/fetch.ts'
import { Holdings } from '../../node/exchange/holdings.ts'
import { ExchangeServer } from '../../node/exchange/serve.ts'
import { VersionCheck } from '../../node/exchange/verify.ts'
import type { OpenVersion } from '../../node/exchange/versions.ts'
import type { Identity } from '../../node/identity/keys.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { CHUNKS_PROTOCOL_2 } from '../../protocol/exchange/chunks.ts'
import { CHUNKS_PROTOCOL, MANIFEST_PROTOCOL } from '../../protocol/exchange/messages.ts'
import { type FaultProxy, startFaultProxy } from '../../scripts/lib/fault-proxy.ts'
import { CONSORTIUM, MemoryArchive, MemoryVersions, STUDY, within, wrapFor } from './helpers.ts'

const silent = pino({ level: 'silent' })
const audit = { append: async () => undefined as never }

/** A libp2p host with the member's key, listening on a loopback port or not at all. */
export const tcpHost = async (identity: Identity, listen: boolean): Promise<Libp2p> =>
  await createLibp2p({
    privateKey: identity.privateKey,
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })

export interface ServedStudy {
  /** the site that made the version */
  origin: Identity
  version: OpenVersion
  files: Buffer[]
  /** the member the study's key is wrapped for */
  reader: Identity
}

export interface Holder {
  identity: Identity
  node: Libp2p
  proxy: FaultProxy
  stop(): Promise<void>
}

/**
 * `identity` holding the whole study and serving it on the chunks protocols given (both by default), behind a
 * proxy that counts the bytes and carries `mbit` Mbit/s each way (unlimited when not given).
 */
export async function holderBehindProxy(
  identity: Identity,
  served: ServedStudy,
  options: { chunkProtocols?: string[]; mbit?: number } = {}
): Promise<Holder> {
  const node = await tcpHost(identity, true)
  const versions = new MemoryVersions(served.version)
  versions.wraps.set(served.reader.peerId, await wrapFor(served.version, served.reader, served.origin))
  const holdings = new Holdings({ archive: new MemoryArchive(served.version, served.files), versions })
  const server = new ExchangeServer(
    { versions, holdings, audit, penalties: new PeerPenalties(), log: silent },
    { timeoutMs: 5000 }
  )
  await node.handle(MANIFEST_PROTOCOL, server.handleManifest)
  for (const protocol of options.chunkProtocols ?? [CHUNKS_PROTOCOL_2, CHUNKS_PROTOCOL]) {
    await node.handle(protocol, protocol === CHUNKS_PROTOCOL_2 ? server.handleChunks2 : server.handleChunks)
  }
  const port = Number(/\/tcp\/(\d+)/.exec(node.getMultiaddrs()[0]?.toString() ?? '')?.[1])
  const proxy = await startFaultProxy({
    target: { host: '127.0.0.1', port },
    ...(options.mbit === undefined ? {} : { bitsPerSecond: options.mbit * 1e6 })
  })
  return {
    identity,
    node,
    proxy,
    stop: async () => {
      await node.stop()
      await proxy.close()
    }
  }
}

/**
 * The reader's fetch of the study from every holder given, each dialled through its proxy, proposing the chunks
 * protocols given (libp2p's default order when not given), to its end. Asserts that it completed and that
 * every instance is stored byte for byte as the site has it.
 */
export async function fetchFromHolders(
  served: ServedStudy,
  holders: Holder[],
  options: { chunkProtocols?: string[]; timeoutMs?: number; packing?: PackChoice } = {}
): Promise<{ fetch: StudyFetch; availability: Awaited<ReturnType<StudyFetch['availability']>> }> {
  const reader = await tcpHost(served.reader, false)
  try {
    for (const holder of holders) {
      await reader.dial(multiaddr(`/ip4/127.0.0.1/tcp/${holder.proxy.port}/p2p/${holder.identity.peerId}`))
    }
    const penalties = new PeerPenalties()
    const registry = { isMember: () => true }
    const versions = new MemoryVersions()
    const archive = new MemoryArchive(served.version)
    const check = new VersionCheck({
      identity: served.reader,
      consortiumId: CONSORTIUM,
      registry,
      penalties,
      versions,
      log: silent
    })
    const fetch = new StudyFetch(
      { libp2p: reader, registry, penalties, archive, versions, check, audit, log: silent },
      {
        studyUid: STUDY,
        actor: { type: 'peer', id: served.reader.peerId },
        chunkProtocols: options.chunkProtocols,
        packing: options.packing
      }
    )
    fetch.start()
    await within(options.timeoutMs ?? 30_000, 'the fetch', fetch.settled())
    const availability = await fetch.availability()
    assert.is(availability.state, 'complete')
    for (const [i, instance] of served.version.index.instances.entries()) {
      const stored = archive.files.get(instance.sopUid)
      assert.ok(stored?.equals(served.files[i] as Buffer), `instance ${i + 1} byte for byte`)
    }
    return { fetch, availability }
  } finally {
    await reader.stop()
  }
}
