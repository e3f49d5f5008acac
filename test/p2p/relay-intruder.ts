/**
 * A non-member that tries to use a member relay, run as its own process by test/e2e/relay.test.ts:
 *
 *   node relay-intruder.ts RELAY_MULTIADDR TARGET_PEER_ID
 *
 * A stock libp2p node (Noise, Yamux, circuit relay transport) with a fresh key and no radmesh credentials. It
 * asks RELAY for a reservation (listens on RELAY/p2p-circuit), then for a relayed connection to TARGET and a
 * radmesh stream over it, and prints one JSON line:
 * { peerId, reserved, relayAddrs, dialed, dialError?, streamOpened, streamError? }.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { FaultTolerance } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { SYNC_PROTOCOL } from '../../protocol/collab/sync.ts'

const [relay, target] = process.argv.slice(2) as [string, string]
const describe = (error: unknown): string =>
  `${(error as Error)?.name ?? 'Error'}: ${(error as Error)?.message ?? String(error)}`

const host = await createLibp2p({
  addresses: { listen: [`${relay}/p2p-circuit`] },
  transports: [tcp(), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() },
  // A refused reservation must not stop the node: the rest of the attempt is the point.
  transportManager: { faultTolerance: FaultTolerance.NO_FATAL }
})
await new Promise(resolve => setTimeout(resolve, 1_000))
const relayAddrs = host
  .getMultiaddrs()
  .map(String)
  .filter(addr => addr.includes('/p2p-circuit'))
const result: Record<string, unknown> = {
  peerId: host.peerId.toString(),
  reserved: relayAddrs.length > 0,
  relayAddrs,
  dialed: false,
  streamOpened: false
}
const circuit = multiaddr(`${relay}/p2p-circuit/p2p/${target}`)
try {
  await host.dial(circuit, { signal: AbortSignal.timeout(10_000) })
  result['dialed'] = true
} catch (error) {
  result['dialError'] = describe(error)
}
// A resolved dial is no authorisation: only a stream the target accepts would be a way in.
try {
  const signal = AbortSignal.timeout(10_000)
  const stream = await host.dialProtocol(circuit, SYNC_PROTOCOL, { signal, runOnLimitedConnection: true })
  result['streamOpened'] = true
  await stream.close()
} catch (error) {
  result['streamError'] = describe(error)
}
process.stdout.write(`${JSON.stringify(result)}\n`)
await host.stop()
process.exit(0)
