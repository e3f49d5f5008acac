/**
 * A member gone bad, run as its own process by the exchange tests:
 *
 *   node bad-holder.ts HOME SITE_MULTIADDR STUDY_UID READER_MULTIADDR [random|disorder]
 *
 * A real member (HOME is joined) that gets the study's real manifest from the site (any member may: it is
 * signed and its patient data sealed), then connects to the reader. Asked about the study, it claims to hold
 * every chunk; asked for chunks, it serves random bytes of the right sizes (`random`, the default), or
 * frames of the chunk after the one asked for (`disorder`). It prints one line `{ "peerId" }` when ready
 * and runs until killed.
 */
import { randomBytes } from 'node:crypto'
import type { Connection, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { Uint8ArrayList } from 'uint8arraylist'
import { homePaths } from '../../node/identity/home.ts'
import { loadIdentity } from '../../node/identity/keys.ts'
import { readCertificateFile, readConsortiumFile } from '../../node/identity/member.ts'
import { MembershipRegistry } from '../../node/membership/registry.ts'
import { trustFrom } from '../../node/membership/trust.ts'
import { createHost } from '../../node/p2p/host.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { openDatabase } from '../../node/store/database.ts'
import type { StudyManifest } from '../../protocol/exchange/manifest.ts'
import {
  CHUNK_FRAME_BYTES,
  CHUNKS_PROTOCOL,
  decodeChunkRequest,
  decodeManifestRequest,
  decodeManifestResponse,
  encodeChunkFrameHeader,
  encodeManifestRequest,
  encodeManifestResponse,
  FRAME_STATUS,
  MANIFEST_PROTOCOL,
  MAX_MANIFEST_MESSAGE_BYTES,
  MAX_REQUEST_BYTES
} from '../../protocol/exchange/messages.ts'

type Arguments = [string, string, string, string, string?]
const [home, siteAddr, studyUid, readerAddr, mode = 'random'] = process.argv.slice(2) as Arguments
const paths = homePaths(home)
const registry = new MembershipRegistry(
  trustFrom(await readConsortiumFile(paths.consortium)),
  await readCertificateFile(paths.certificate),
  await openDatabase(paths.database)
)
await registry.load()
const host = await createHost({
  identity: await loadIdentity(paths),
  registry,
  penalties: new PeerPenalties(),
  listen: [],
  mdns: false,
  agentName: 'bad-holder',
  log: pino({ level: 'silent' })
})
await host.start()
const site = multiaddr(siteAddr)
await host.dial(site, { signal: AbortSignal.timeout(10_000) })
const manifests = new Map<string, StudyManifest>()

async function realManifest(): Promise<StudyManifest | undefined> {
  const stream = await host.dialProtocol(site, MANIFEST_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
  const lp = lpStream(stream, { maxDataLength: MAX_MANIFEST_MESSAGE_BYTES })
  await lp.write(encodeManifestRequest({ studyUid }))
  const answer = decodeManifestResponse((await lp.read()).subarray())
  await stream.close()
  if (answer.status !== 'ok') return undefined
  manifests.set(`${studyUid}/${answer.manifest.versionId}`, answer.manifest)
  return answer.manifest
}

await host.handle(MANIFEST_PROTOCOL, async (stream: Stream) => {
  const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
  const request = decodeManifestRequest((await lp.read()).subarray())
  const manifest = [...manifests.values()].find(m => m.studyUid === request.studyUid)
  await lp.write(
    encodeManifestResponse(
      manifest === undefined
        ? { status: 'unknown-study' }
        : {
            status: 'ok',
            manifest,
            wraps: [],
            have: new Uint8Array(Math.ceil(manifest.chunkHashes.length / 8)).fill(0xff)
          }
    )
  )
  await stream.close()
})

await host.handle(
  CHUNKS_PROTOCOL,
  async (stream: Stream, _connection: Connection) => {
    const lp = lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES })
    try {
      while (true) {
        const request = decodeChunkRequest((await lp.read()).subarray())
        const size = manifests.get(`${request.studyUid}/${request.versionId}`)?.chunkSizes[request.index]
        if (size === undefined) {
          await lp.write(encodeChunkFrameHeader(FRAME_STATUS.notHeld, request.index, request.offset))
          continue
        }
        const garbage = randomBytes(size)
        for (let offset = request.offset; offset < size; offset += CHUNK_FRAME_BYTES) {
          const index = mode === 'disorder' ? request.index + 1 : request.index
          const bytes = garbage.subarray(offset, offset + CHUNK_FRAME_BYTES)
          await lp.write(new Uint8ArrayList(encodeChunkFrameHeader(FRAME_STATUS.data, index, offset), bytes))
        }
      }
    } catch {
      stream.abort(new Error('done'))
    }
  },
  { maxInboundStreams: 8 }
)

if ((await realManifest()) === undefined) throw new Error(`the site does not know study ${studyUid}`)
await host.dial(multiaddr(readerAddr), { signal: AbortSignal.timeout(10_000) })
process.stdout.write(`${JSON.stringify({ peerId: host.peerId.toString() })}\n`)
