/**
 * Direct when possible, in network namespaces (scripts/lib/netns.ts): a site with a public address reaches a
 * reader behind a symmetric NAT only by the reader's relay address (the reader cannot be dialled); the relayed
 * link is replaced by a direct one (the reader dials the site at the address of its signed record), the
 * relayed one is closed, and a study transfers over the direct link.
 *
 * The WAN is 11.99.0.0/24 here: libp2p takes private ranges (10/8, the TEST-NETs) for undialable in a direct
 * upgrade; the namespaces have no route out, so the address reaches nothing real. Two members both behind NAT
 * stay relayed (test/e2e/relay-nat.test.ts): TCP hole punching is not possible in js-libp2p (see
 * node/p2p/direct-upgrade.ts). Skipped (with the reason) only when not run as root; as root (CI) a missing
 * `nft` fails it.
 */
import { test } from 'uvu'
import { claimedHeadCt, netnsTests, peers } from '../helpers/netns-tests.ts'
import * as assert from 'uvu/assert'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { startInNamespace } from '../../scripts/lib/netns.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const netns = netnsTests(test)

test('a site with a public address and a reader behind a symmetric NAT: the relayed link becomes direct', async () => {
  if (netns.skipped()) return
  const wan = '11.99.0'
  const net = netns.build({ wan, natB: 'symmetric' })
  const pub = net.addWanHost('pub', `${wan}.9`)
  const consortium = await createScratchConsortium('Direct')
  const relay = await startInNamespace(net.ns.wan, net.mgmt.wan, await consortium.member('Relay', 'site'), [
    '--listen',
    `/ip4/${net.addr.relay}/tcp/7400`,
    '--relay'
  ])
  netns.track(relay)
  const relayAddr = `/ip4/${net.addr.relay}/tcp/7400/p2p/${relay.peerId}`
  const readerHome = await consortium.member('Dr Symmetric', 'radiologist', [], ['--subspecialty', 'neuro'])
  const reader = await startInNamespace(net.ns.reader, net.mgmt.reader, readerHome, [
    '--listen',
    `/ip4/${net.addr.reader}/tcp/7400`,
    '--relay-via',
    relayAddr
  ])
  netns.track(reader)
  await waitFor(
    'the reader at the relay',
    async () => (await peers(relay)).some(p => p.peerId === reader.peerId),
    20_000
  )
  const site = await startInNamespace(pub.ns, pub.mgmt, await consortium.member('Public Site', 'site'), [
    '--listen',
    `/ip4/${wan}.9/tcp/7400`,
    '--peer',
    `${relayAddr}/p2p-circuit/p2p/${reader.peerId}`,
    '--dicom',
    '11112',
    '--stable-after',
    '1s'
  ])
  netns.track(site)
  const started = Date.now()
  const link = await waitFor(
    'a direct link between the site and the reader, and no relayed one',
    async () => {
      const seen = (await peers(site)).find(p => p.peerId === reader.peerId)
      return seen?.link === 'direct' && seen.addrs.every(a => !a.includes('/p2p-circuit')) ? seen : undefined
    },
    20_000
  )
  process.stdout.write(`    [direct upgrade] direct ${Date.now() - started} ms after the site started\n`)
  assert.ok(
    link.addrs.some(a => a.includes('/ip4/11.99.0.3/')),
    `the reader seen from its NAT: ${link.addrs}`
  )

  const { study } = await claimedHeadCt(site, pub.mgmt, reader, { slices: 8, seed: 1819 })
  await waitFor(
    'the study transferred and verified',
    async () =>
      (await reader.api<{ complete: boolean }>('GET', `/api/studies/${study.studyInstanceUid}/availability`)).body
        .complete,
    60_000
  )
  const after = (await peers(reader)).find(p => p.peerId === site.peerId)
  assert.is(after?.link, 'direct', JSON.stringify(after))
  assert.ok(
    after?.addrs.every(a => !a.includes('/p2p-circuit')),
    'no relayed link was reopened for the transfer'
  )
})

test.run()
