import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { MembershipRegistry } from '../../node/membership/registry.ts'
import { REDIAL_POLICY } from '../../node/p2p/limits.ts'
import { BOOK_ATTEMPTS, backoffDelay, Redialer } from '../../node/p2p/redial.ts'
import { BAN_MS, PeerPenalties, PENALTY_DECAY_MS, PENALTY_THRESHOLD } from '../../node/p2p/penalties.ts'

test('redial backoff doubles from 1 s, is capped at 30 s, and jitters within ±20 %', () => {
  assert.is(
    backoffDelay(0, () => 0.5),
    REDIAL_POLICY.initialDelayMs
  )
  assert.is(
    backoffDelay(1, () => 0.5),
    2 * REDIAL_POLICY.initialDelayMs
  )
  assert.is(
    backoffDelay(3, () => 0.5),
    8 * REDIAL_POLICY.initialDelayMs
  )
  assert.is(
    backoffDelay(50, () => 0.5),
    REDIAL_POLICY.maxDelayMs
  )
  assert.is(
    backoffDelay(0, () => 0),
    800
  )
  assert.is(
    backoffDelay(0, () => 1),
    1200
  )
})

test('penalties ban a peer once at the threshold, for the cool-down, and are forgotten after the decay time', () => {
  const banned: string[] = []
  const penalties = new PeerPenalties()
  penalties.setBanHandler(peer => banned.push(peer))
  penalties.penalise('p', 'malformed-message', PENALTY_THRESHOLD - 1, 0)
  assert.equal(banned, [])
  assert.not.ok(penalties.isBanned('p', 1))
  penalties.penalise('p', 'malformed-message', 1, 1)
  penalties.penalise('p', 'malformed-message', 1, 2)
  assert.equal(banned, ['p'])
  assert.ok(penalties.isBanned('p', 2))
  assert.not.ok(penalties.isBanned('p', 1 + BAN_MS))
  assert.is(penalties.penalise('p', 'malformed-message', 1, PENALTY_DECAY_MS + BAN_MS), 1)
  assert.not.ok(penalties.isBanned('q', 2))
})

/**
 * A Redialer over a stand-in libp2p (the boundary it dials through): one open outbound link to `member` at
 * `linkedAt`; every dial is recorded and fails.
 */
async function redialerLinkedAt(linkedAt: string, bootstrap: string[]) {
  const me = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const member = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  const dials: string[][] = []
  const link = { status: 'open', direction: 'outbound', remoteAddr: multiaddr(`${linkedAt}/p2p/${member}`) }
  const libp2p = {
    peerId: me,
    addEventListener: () => undefined,
    removeEventListener: () => undefined,
    getConnections: (peer?: { toString(): string }) => (peer?.toString() === member.toString() ? [link] : []),
    dial: async (addrs: Multiaddr | Multiaddr[]) => {
      dials.push((Array.isArray(addrs) ? addrs : [addrs]).map(String))
      throw new Error('not dialled in this test')
    },
    peerStore: { all: async () => [] }
  } as unknown as Libp2p
  const registry = { isRevoked: () => false, onRevoked: () => () => undefined } as unknown as MembershipRegistry
  const redialer = new Redialer(libp2p, registry, pino({ level: 'silent' }))
  redialer.start(bootstrap.map(addr => multiaddr(`${addr}/p2p/${member}`)))
  await new Promise(resolve => setTimeout(resolve, 10))
  dials.length = 0
  return { redialer, member, dials }
}

test("a member's newer address record: one reached at an address it no longer names is dialled at the new ones", async () => {
  const { redialer, member, dials } = await redialerLinkedAt('/ip4/10.0.0.5/tcp/7400', [])
  redialer.learnt(member, [multiaddr('/ip4/203.0.113.7/tcp/7400')])
  assert.equal(dials, [[`/ip4/203.0.113.7/tcp/7400/p2p/${member}`]])
  redialer.stop()
})

test('one reached at its --peer address (a port forward or proxy it cannot name) has not moved', async () => {
  const forward = '/ip4/198.51.100.9/tcp/17400'
  const { redialer, member, dials } = await redialerLinkedAt(forward, [forward])
  redialer.learnt(member, [multiaddr('/ip4/10.0.0.5/tcp/7400')])
  assert.equal(dials, [])
  redialer.stop()
})

test('a member from the stored book never reached is let go of after its attempts, once some member is reached', async () => {
  for (const reachesSome of [true, false]) {
    const me = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const member = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const other = { status: 'open', direction: 'outbound', remoteAddr: multiaddr('/ip4/10.0.0.9/tcp/7400') }
    const libp2p = {
      peerId: me,
      addEventListener: () => undefined,
      removeEventListener: () => undefined,
      getConnections: (peer?: unknown) => (peer === undefined && reachesSome ? [other] : []),
      dial: async () => {
        throw new Error('unreachable in this test')
      },
      peerStore: { all: async () => [], get: async () => ({ addresses: [] }) }
    } as unknown as Libp2p
    const registry = { isRevoked: () => false, onRevoked: () => () => undefined } as unknown as MembershipRegistry
    const redialer = new Redialer(libp2p, registry, pino({ level: 'silent' }))
    redialer.start([], [member.toString()])
    const internals = redialer as unknown as {
      targets: Map<string, unknown>
      dial(target: unknown): Promise<void>
    }
    for (let i = 0; i < BOOK_ATTEMPTS; i++) {
      const target = internals.targets.get(member.toString())
      if (target !== undefined) await internals.dial(target)
    }
    assert.is(internals.targets.has(member.toString()), !reachesSome, `reaches some member: ${reachesSome}`)
    redialer.stop()
  }
})

test.run()
