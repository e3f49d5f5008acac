/**
 * The STUN servers a member gives WebRTC (`memberStunServers`): its member relays only, each at the address it
 * reaches it by (the relay of a relayed link, and a relay it holds a reservation on), never a plain member's
 * direct address and never a WebRTC link's; and an empty list, not libp2p's public defaults, when it has none.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Connection, Libp2p } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { memberStunServers } from '../../node/p2p/host.ts'

const peer = async (): Promise<string> => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
const [self, relayA, relayB, member, other] = await Promise.all([peer(), peer(), peer(), peer(), peer()])

type Node = Pick<Libp2p, 'getMultiaddrs' | 'getConnections'>

function node(own: string[], links: Array<{ to: string; addr: string; status?: string }>): Node {
  return {
    getMultiaddrs: () => own.map(a => multiaddr(a)),
    getConnections: () =>
      links.map(
        l =>
          ({
            remotePeer: { toString: () => l.to },
            remoteAddr: multiaddr(l.addr),
            status: l.status ?? 'open'
          }) as unknown as Connection
      )
  } as Node
}

test('the relay of a relayed link and a relay held a reservation on, at the addresses they are reached by', () => {
  const servers = memberStunServers(
    node(
      [`/ip4/198.51.100.7/tcp/7400/p2p/${relayB}/p2p-circuit/p2p/${self}`],
      [
        // a relayed link to a member, through relay A
        { to: member, addr: `/ip4/203.0.113.1/tcp/7400/p2p/${relayA}/p2p-circuit/p2p/${member}` },
        // the direct link to relay B, which this node holds a reservation on
        { to: relayB, addr: `/ip4/198.51.100.7/tcp/7400/p2p/${relayB}` },
        // a plain member reached directly: not a STUN server
        { to: other, addr: `/ip4/192.0.2.9/tcp/7400/p2p/${other}` }
      ]
    )
  )
  assert.equal(servers.sort(), ['stun:198.51.100.7:3478', 'stun:203.0.113.1:3478'])
})

test('no relay, a closed link or a WebRTC link: no STUN server, and an empty list rather than a default', () => {
  assert.equal(memberStunServers(node([], [])), [])
  const servers = memberStunServers(
    node(
      [],
      [
        { to: member, addr: `/ip4/203.0.113.1/tcp/7400/p2p/${relayA}/p2p-circuit/p2p/${member}`, status: 'closed' },
        { to: other, addr: `/ip4/203.0.113.1/tcp/7400/p2p/${relayA}/p2p-circuit/webrtc/p2p/${other}` }
      ]
    )
  )
  assert.equal(servers, [])
})

test.run()
