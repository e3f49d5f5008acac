/**
 * The address book in network namespaces (scripts/lib/netns.ts): a member with a public address (A) changes it
 * while a reader behind NAT (B), who can dial out but not be dialled, is connected to it. B learns A's new
 * signed address record through a third member (C, whom A reconnects to) and dials A there: found again within
 * a minute. B, restarted with no address of anyone on its command line, finds both from its stored book.
 * Skipped (with the reason) only when not run as root; as root (CI) a missing `nft` fails it.
 */
import { execFileSync } from 'node:child_process'
import { test } from 'uvu'
import { netnsTests, peers } from '../helpers/netns-tests.ts'
import * as assert from 'uvu/assert'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { startInNamespace } from '../../scripts/lib/netns.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const netns = netnsTests(test)

/**
 * A dead link is noticed by the connection monitor within 10 s (ping interval) + 20 s (ping timeout), the
 * member redials its --peer at once (first retry 1 s), its new record floods in a round trip: about 35 s at
 * worst, so the one minute holds with room to spare.
 */
const FOUND_AGAIN_MS = 60_000

test('a member whose address changes is found again within one minute; a restarted node finds all from its book', async () => {
  if (netns.skipped()) return
  const net = netns.build()
  const roam = net.addWanHost('roam', '10.99.0.5')
  const consortium = await createScratchConsortium('Roaming')
  const c = await startInNamespace(net.ns.wan, net.mgmt.wan, await consortium.member('Hub C', 'site'), [
    '--listen',
    `/ip4/${net.addr.relay}/tcp/7400`
  ])
  netns.track(c)
  const cAddr = `/ip4/${net.addr.relay}/tcp/7400/p2p/${c.peerId}`
  // A listens on every interface, so an address its interface gets later is one it listens on.
  const a = await startInNamespace(roam.ns, roam.mgmt, await consortium.member('Roaming A', 'site'), [
    '--listen',
    '/ip4/0.0.0.0/tcp/7400',
    '--peer',
    cAddr
  ])
  netns.track(a)
  const bHome = await consortium.member('Dr B behind NAT', 'radiologist')
  const bArgs = ['--listen', `/ip4/${net.addr.reader}/tcp/7400`]
  let b = await startInNamespace(net.ns.reader, net.mgmt.reader, bHome, [
    ...bArgs,
    '--peer',
    cAddr,
    '--peer',
    `/ip4/10.99.0.5/tcp/7400/p2p/${a.peerId}`
  ])
  netns.track(b)
  await waitFor('B connected to A and C', async () => (await peers(b)).length === 2, 30_000)

  execFileSync('ip', ['-n', roam.ns, 'addr', 'del', '10.99.0.5/24', 'dev', 'eth0'])
  execFileSync('ip', ['-n', roam.ns, 'addr', 'add', '10.99.0.6/24', 'dev', 'eth0'])
  const moved = Date.now()
  const found = await waitFor(
    'B connected to A at its new address',
    async () =>
      (await peers(b)).find(p => p.peerId === a.peerId && p.addrs.some(addr => addr.includes('/ip4/10.99.0.6/'))),
    FOUND_AGAIN_MS + 10_000
  )
  const took = Date.now() - moved
  process.stdout.write(`    [address change] A found again at its new address after ${took} ms\n`)
  assert.ok(took < FOUND_AGAIN_MS, `${took} ms`)
  assert.is(found.link, 'direct')
  assert.ok(b.output().length > 0)

  // Restarted with no --peer at all: the stored book has A's new address and C's.
  await b.kill()
  b = netns.track(await startInNamespace(net.ns.reader, net.mgmt.reader, bHome, bArgs))
  await waitFor(
    'B, restarted without --peer, connected to A and C from its book',
    async () => {
      const now = await peers(b)
      return now.some(p => p.peerId === a.peerId) && now.some(p => p.peerId === c.peerId)
    },
    30_000
  )
})

test.run()
