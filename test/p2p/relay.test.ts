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
import { linkOf, relayGate, relayPeers } from '../../node/p2p/relay.ts'
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

test('start refuses relay limits without --relay, an unreadable size, a --relay-via without a peer id', async () => {
  const home = await tempDir()
  for (const [args, flag] of [
    [['--relay-data-limit', '1GiB'], '--relay-data-limit'],
    [['--relay', '--relay-data-limit', '1 gigabyte'], '--relay-data-limit 1 gigabyte'],
    [['--relay', '--relay-duration-limit', '90'], '--relay-duration-limit 90'],
    [['--relay-via', '/ip4/10.0.0.1/tcp/7400'], '--relay-via /ip4/10.0.0.1/tcp/7400']
  ] as const) {
    const result = await radmesh(['start', '--home', home, ...args])
    assert.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr, flag)
  }
})

test.run()
