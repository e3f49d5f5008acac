/**
 * The links a node keeps, against real node processes: two readers who name only their site (`--peer`) learn
 * each other's signed address records through it, and do not link to each other for that. Neither libp2p's
 * search for relays (a node with no public address wants reservations) nor the redialer dials a member only
 * because its record arrived: links cost keepalives both ways, and a hundred members would otherwise make a
 * hundred links each (issue 14's idle traffic).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { nodesOfTests } from '../helpers/nodes.ts'
import type { ConnectedMembers } from '../../protocol/api/peers.ts'
import { knowsRadiologists, p2pAddr, type StartedNode } from '../../scripts/lib/node-process.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const nodes = nodesOfTests(test, 'Links')

const peers = async (node: StartedNode): Promise<ConnectedMembers> =>
  (await node.api<ConnectedMembers>('GET', '/api/peers')).body

/** Address records flood in a round trip; the links they caused opened within 100 ms of them. */
const SETTLE_MS = 6_000

test("two readers of one site learn each other's addresses and do not link to each other", async () => {
  const site = await nodes.start(await nodes.member('Links Site', 'site'))
  const a = await nodes.start(await nodes.member('Dr Links A', 'radiologist'), { peers: [p2pAddr(site)] })
  const b = await nodes.start(await nodes.member('Dr Links B', 'radiologist'), { peers: [p2pAddr(site)] })
  await waitFor('the site linked to both readers', async () => (await peers(site)).length === 2, 20_000)
  await knowsRadiologists(site, 2, 20_000)
  await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
  assert.equal(
    (await peers(a)).map(p => p.peerId),
    [site.peerId],
    'reader A is linked to its site alone'
  )
  assert.equal(
    (await peers(b)).map(p => p.peerId),
    [site.peerId],
    'reader B is linked to its site alone'
  )
})

test.run()
