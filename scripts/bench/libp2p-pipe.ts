/**
 * The floor under any libp2p transfer on this machine: bytes moved between two processes over libp2p as radmesh
 * nodes run it (TCP + Noise, with radmesh's transport cipher, node/membership/noise-crypto.ts, + Yamux), with no
 * content encryption, no verification and no storage. The transfer benchmark runs it on the study's byte count
 * to show what radmesh's wire alone costs.
 *
 *   node scripts/bench/libp2p-pipe.ts serve              prints its multiaddr, then serves /bench/pipe/1
 *   node scripts/bench/libp2p-pipe.ts pull ADDR BYTES N   pulls BYTES over N streams, prints {"seconds":…,"rssMb":…}
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { P2P_LIMITS } from '../../node/p2p/limits.ts'
import { noiseCrypto } from '../../node/membership/noise-crypto.ts'

const PROTOCOL = '/bench/pipe/1'
/** the size of each send, as a chunk server's frames would be batched */
const BLOCK_BYTES = 256 * 1024

const [mode, address, bytesArgument, streamsArgument] = process.argv.slice(2)
const node = await createLibp2p({
  addresses: { listen: mode === 'serve' ? ['/ip4/127.0.0.1/tcp/0'] : [] },
  transports: [tcp()],
  connectionEncrypters: [noise({ crypto: noiseCrypto })],
  streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: P2P_LIMITS.maxStreamWindowSize } })]
})

if (mode === 'serve') {
  const block = Buffer.alloc(BLOCK_BYTES, 0x5a)
  await node.handle(PROTOCOL, async stream => {
    let wanted = 0
    for await (const request of stream) {
      wanted = Number(Buffer.from(request.subarray()).toString('ascii'))
      break
    }
    for (let sent = 0; sent < wanted; sent += BLOCK_BYTES) {
      if (!stream.send(block.subarray(0, Math.min(BLOCK_BYTES, wanted - sent)))) await stream.onDrain()
    }
    await stream.close()
  })
  process.stdout.write(`${node.getMultiaddrs()[0]?.toString() ?? ''}\n`)
} else if (mode === 'pull' && address !== undefined) {
  const total = Number(bytesArgument)
  const streams = Number(streamsArgument ?? '1')
  const connection = await node.dial(multiaddr(address))
  const started = performance.now()
  const received = await Promise.all(
    Array.from({ length: streams }, async (_, lane) => {
      const share = Math.floor(total / streams) + (lane < total % streams ? 1 : 0)
      const stream = await connection.newStream(PROTOCOL)
      stream.send(Buffer.from(String(share), 'ascii'))
      let got = 0
      for await (const data of stream) got += data.byteLength
      return got
    })
  )
  const seconds = (performance.now() - started) / 1000
  const got = received.reduce((sum, n) => sum + n, 0)
  if (got !== total) throw new Error(`pulled ${got} of ${total} bytes`)
  // Peak RSS of this end in MiB, as the benchmarks print it (resourceUsage's maxRSS is in KiB).
  const rssMb = process.resourceUsage().maxRSS / 1024
  process.stdout.write(`${JSON.stringify({ seconds, rssMb })}\n`)
  await node.stop()
} else {
  process.stderr.write('usage: libp2p-pipe.ts serve | pull ADDR BYTES STREAMS\n')
  process.exit(2)
}
