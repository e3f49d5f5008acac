/**
 * A would-be intruder, run as its own process by the membership tests:
 *
 *   node intruder.ts plain TARGET_MULTIADDR
 *       a stock libp2p node (Noise, Yamux) with a fresh key and no radmesh credentials
 *   node intruder.ts certificate HOME CERT_FILE CONSORTIUM_FILE TARGET_MULTIADDR
 *       radmesh's own host, presenting CERT_FILE whatever it is (expired, of another consortium, stolen)
 *   node intruder.ts garbage HOME TARGET_MULTIADDR [ROUNDS] [PROTOCOL]
 *       a real member (HOME is joined) that sends malformed and oversized frames on PROTOCOL (default
 *       /radmesh/revocations/1.0.0);
 *       prints { peerId, sent, afterwards } where afterwards says whether a well-formed exchange still works
 *
 * It dials the target, then tries to open a stream to a radmesh application protocol, and prints one JSON
 * line: { peerId, dialed, dialError?, streamOpened, streamError? }.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { pino } from 'pino'
import type { Libp2p } from '@libp2p/interface'
import { homePaths } from '../../node/identity/home.ts'
import { loadIdentity } from '../../node/identity/keys.ts'
import { readCertificateFile, readConsortiumFile } from '../../node/identity/member.ts'
import { MembershipRegistry } from '../../node/membership/registry.ts'
import { trustFrom } from '../../node/membership/trust.ts'
import { createHost } from '../../node/p2p/host.ts'
import { PeerPenalties } from '../../node/p2p/penalties.ts'
import { openDatabase } from '../../node/store/database.ts'
import { REVOCATIONS_PROTOCOL } from '../../protocol/membership/index.ts'

function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  const prefix: number[] = []
  let n = bytes.byteLength
  while (n >= 0x80) {
    prefix.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  prefix.push(n)
  return new Uint8Array([...prefix, ...bytes])
}

const describe = (error: unknown): string =>
  `${(error as Error)?.name ?? 'Error'}: ${(error as Error)?.message ?? String(error)}`

const [mode, ...args] = process.argv.slice(2)
let host: Libp2p
let target: string

if (mode === 'plain') {
  target = args[0] as string
  host = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
} else if (mode === 'certificate') {
  const [home, certFile, consortiumFile, targetAddr] = args as [string, string, string, string]
  target = targetAddr
  const paths = homePaths(home)
  const identity = await loadIdentity(paths)
  const certificate = await readCertificateFile(certFile)
  const trust = trustFrom(await readConsortiumFile(consortiumFile))
  const db = await openDatabase(paths.database)
  const registry = new MembershipRegistry(trust, certificate, db)
  host = await createHost({
    identity,
    registry,
    penalties: new PeerPenalties(),
    listen: [],
    mdns: false,
    agentName: 'intruder',
    log: pino({ level: 'silent' })
  })
  await host.start()
} else if (mode === 'garbage') {
  const [home, targetAddr, rounds = '1', protocol = REVOCATIONS_PROTOCOL] = args as [string, string, string?, string?]
  const paths = homePaths(home)
  const certificate = await readCertificateFile(paths.certificate)
  const registry = new MembershipRegistry(
    trustFrom(await readConsortiumFile(paths.consortium)),
    certificate,
    await openDatabase(paths.database)
  )
  const member = await createHost({
    identity: await loadIdentity(paths),
    registry,
    penalties: new PeerPenalties(),
    listen: [],
    mdns: false,
    agentName: 'garbage',
    log: pino({ level: 'silent' })
  })
  await member.start()
  const frames = [
    new Uint8Array([5, 1, 2, 3, 4, 5]), // length 5, then bytes that are not JSON
    lengthPrefixed(new TextEncoder().encode('{"v":1,"type":"revocations","revocations":[{"v":1}]}')),
    new Uint8Array([0x80, 0x80, 0x80, 0x02]) // a length of 4 MiB, over the 2 MiB limit
  ]
  let sent = 0
  for (const frame of Array.from({ length: Number(rounds) }, () => frames).flat()) {
    try {
      const stream = await member.dialProtocol(multiaddr(targetAddr), protocol, { signal: AbortSignal.timeout(5_000) })
      stream.send(frame)
      await stream.close().catch(() => {})
      sent++
    } catch {}
  }
  // Afterwards: can this member still open a stream and deliver a well-formed frame?
  let afterwards = false
  await new Promise(resolve => setTimeout(resolve, 500))
  try {
    const stream = await member.dialProtocol(multiaddr(targetAddr), REVOCATIONS_PROTOCOL, {
      signal: AbortSignal.timeout(5_000)
    })
    stream.send(lengthPrefixed(new TextEncoder().encode('{"v":1,"type":"revocations","revocations":[]}')))
    await stream.close()
    afterwards = true
  } catch {}
  process.stdout.write(`${JSON.stringify({ peerId: member.peerId.toString(), sent, afterwards })}\n`)
  await member.stop()
  process.exit(0)
} else {
  throw new Error(`unknown mode ${mode}`)
}

const result: { peerId: string; dialed: boolean; dialError?: string; streamOpened: boolean; streamError?: string } = {
  peerId: host.peerId.toString(),
  dialed: false,
  streamOpened: false
}
try {
  await host.dial(multiaddr(target), { signal: AbortSignal.timeout(10_000) })
  result.dialed = true
} catch (error) {
  result.dialError = describe(error)
}
// A resolved dial is not an authorisation: libp2p can resolve a dial that the target's gater aborts about half a
// second later. So try a stream regardless; only a stream the target accepts would be a way in.
try {
  const stream = await host.dialProtocol(multiaddr(target), REVOCATIONS_PROTOCOL, {
    signal: AbortSignal.timeout(10_000)
  })
  result.streamOpened = true
  await stream.close()
} catch (error) {
  result.streamError = describe(error)
}
process.stdout.write(`${JSON.stringify(result)}\n`)
await host.stop()
process.exit(0)
