/**
 * Relays among members, in parts: how a link is told direct or relayed (and through which relay), the gate
 * on the relay's decisions, and the `start` options that turn a relay on.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { isPublicDirect } from '../../node/p2p/reach.ts'
import {
  AUTO_RESERVATIONS,
  hasPublicAddress,
  linkOf,
  relayGate,
  relayPeers,
  reservationsWanted
} from '../../node/p2p/relay.ts'
import { radmesh } from '../../scripts/lib/cli.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

const newPeer = async (): Promise<ReturnType<typeof peerIdFromPrivateKey>> =>
  peerIdFromPrivateKey(await generateKeyPair('Ed25519'))

test('a link is direct, or relayed through the relay its address names', async () => {
  const [relay, member] = [await newPeer(), await newPeer()]
  assert.equal(linkOf({ remoteAddr: multiaddr(`/ip4/10.0.0.1/tcp/7400/p2p/${member}`) }), { link: 'direct' })
  const relayed = multiaddr(`/ip4/10.0.0.1/tcp/7400/p2p/${relay}/p2p-circuit/p2p/${member}`)
  assert.equal(linkOf({ remoteAddr: relayed }), { link: 'relayed', relay: relay.toString() })
  const own = multiaddr(`/ip4/10.0.0.1/tcp/7400/p2p/${relay}/p2p-circuit`)
  assert.equal([...relayPeers({ getMultiaddrs: () => [own, multiaddr('/ip4/10.0.0.2/tcp/1')] })], [relay.toString()])
})

test('a WebRTC link is direct, though the remote address of the dialler names the relay it was signalled through', async () => {
  const [relay, member] = [await newPeer(), await newPeer()]
  const dialled = multiaddr(`/ip4/10.0.0.1/tcp/7400/p2p/${relay}/p2p-circuit/webrtc/p2p/${member}`)
  assert.equal(linkOf({ remoteAddr: dialled }), { link: 'direct', transport: 'webrtc' })
  assert.equal(linkOf({ remoteAddr: multiaddr(`/webrtc/p2p/${member}`) }), { link: 'direct', transport: 'webrtc' })
  // its own WebRTC address still names the relay it holds a reservation on, and is not a public direct address
  const own = multiaddr(`/ip4/11.0.0.1/tcp/7400/p2p/${relay}/p2p-circuit/webrtc`)
  const plain = multiaddr(`/ip4/11.0.0.1/tcp/7400/p2p/${relay}/p2p-circuit`)
  assert.equal([...relayPeers({ getMultiaddrs: () => [own, plain] })], [relay.toString()])
  assert.is(isPublicDirect(own.toString()), false)
})

test('the relay gate lets current members through and refuses everyone else at every relay decision', async () => {
  const [member, stranger, banned] = [await newPeer(), await newPeer(), await newPeer()]
  const registry = { isMember: (peer: string) => peer !== stranger.toString() }
  const penalties = { isBanned: (peer: string) => peer === banned.toString() }
  const gate = relayGate(registry, penalties, pino({ level: 'silent' }))
  assert.is(await gate.denyInboundRelayReservation?.(member), false)
  assert.is(await gate.denyInboundRelayReservation?.(stranger), true)
  assert.is(await gate.denyInboundRelayReservation?.(banned), true)
  assert.is(await gate.denyOutboundRelayedConnection?.(member, member), false)
  assert.is(await gate.denyOutboundRelayedConnection?.(member, stranger), true)
  assert.is(await gate.denyOutboundRelayedConnection?.(stranger, member), true)
  assert.is(await gate.denyInboundRelayedConnection?.(member, member), false)
  assert.is(await gate.denyInboundRelayedConnection?.(stranger, member), true)
})

test('a node whose addresses are all private keeps reservations on member relays; a reachable one or a relay none', () => {
  const iface = (address: string, family = 'IPv4', internal = false) => ({ address, family, internal })
  const behindNat = { lo: [iface('127.0.0.1', 'IPv4', true)], eth0: [iface('192.168.1.20')] }
  const publicHost = { lo: [iface('127.0.0.1', 'IPv4', true)], eth0: [iface('81.2.69.160')] }
  assert.is(hasPublicAddress(['/ip4/0.0.0.0/tcp/7400'], behindNat), false)
  assert.is(hasPublicAddress(['/ip4/0.0.0.0/tcp/7400'], publicHost), true)
  assert.is(hasPublicAddress(['/ip4/81.2.69.160/tcp/7400'], behindNat), true)
  assert.is(hasPublicAddress(['/ip4/10.0.0.5/tcp/7400', '/ip4/127.0.0.1/tcp/7401/ws'], publicHost), false)
  const base = { serving: false, announced: false, listen: ['/ip4/10.0.0.5/tcp/7400'], relayVia: 0 }
  assert.is(reservationsWanted(base), AUTO_RESERVATIONS)
  assert.is(reservationsWanted({ ...base, serving: true }), 0)
  assert.is(reservationsWanted({ ...base, announced: true }), 0)
  assert.is(reservationsWanted({ ...base, listen: ['/ip4/81.2.69.160/tcp/7400'] }), 0)
  assert.is(reservationsWanted({ ...base, announced: true, relayVia: 1 }), 1, '--relay-via holds at least one')
  assert.is(reservationsWanted({ ...base, explicit: 0 }), 0)
  assert.is(reservationsWanted({ ...base, explicit: 3, serving: true }), 3)
  assert.is(reservationsWanted({ ...base, explicit: 0, relayVia: 1 }), 1)
})

test('a public direct address is outside private ranges and not through a relay', async () => {
  const relay = await newPeer()
  assert.ok(isPublicDirect('/ip4/81.2.69.160/tcp/7400'))
  assert.not.ok(isPublicDirect('/ip4/192.168.1.20/tcp/7400'))
  assert.not.ok(isPublicDirect(`/ip4/81.2.69.160/tcp/7400/p2p/${relay}/p2p-circuit`))
  assert.not.ok(isPublicDirect('not an address'))
})

test('start refuses relay limits without --relay, an unreadable size, a --relay-via without a peer id, bad reservations', async () => {
  const home = await tempDir()
  for (const [args, flag] of [
    [['--relay-data-limit', '1GiB'], '--relay-data-limit'],
    [['--relay', '--relay-data-limit', '1 gigabyte'], '--relay-data-limit 1 gigabyte'],
    [['--relay', '--relay-duration-limit', '90'], '--relay-duration-limit 90'],
    [['--relay-via', '/ip4/10.0.0.1/tcp/7400'], '--relay-via /ip4/10.0.0.1/tcp/7400'],
    [['--relay-reservations', '9'], '--relay-reservations 9'],
    [['--relay-reservations', 'two'], '--relay-reservations two']
  ] as const) {
    const result = await radmesh(['start', '--home', home, ...args])
    assert.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr, flag)
  }
})

test.run()
