/**
 * Relays among members behind real NATs (network namespaces, nftables masquerade; scripts/lib/netns.ts): a
 * site and a reader each behind its own NAT, a relay member on the shared segment. They connect through the
 * relay; the worklist and a report sync; a study transfers and verifies. The reader, given no --relay-via, keeps
 * a reservation on the relay by itself (its addresses are all private). With two NATs that would allow hole
 * punching the link still stays relayed: TCP hole punching is not possible in js-libp2p (see
 * node/p2p/direct-upgrade.ts). Skipped (with the reason) only when not run as root; as root (CI) a missing
 * `nft` fails it.
 */
import { test } from 'uvu'
import { claimedHeadCt, netnsTests, peers } from '../helpers/netns-tests.ts'
import * as assert from 'uvu/assert'
import type { Reach } from '../../protocol/api/peers.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { startBehindNats } from '../../scripts/lib/netns.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const netns = netnsTests(test)

test('a site and a reader behind their own NATs: via the relay, worklist, report and a verified study', async () => {
  if (netns.skipped()) return
  const net = netns.build()
  const consortium = await createScratchConsortium('Behind NAT')
  const { relay, site, reader } = await startBehindNats(
    net,
    {
      relay: await consortium.member('WAN Relay', 'site'),
      site: await consortium.member('NAT Site', 'site'),
      reader: await consortium.member('Dr NAT Reader', 'radiologist', [], ['--subspecialty', 'neuro'])
    },
    { args: { site: ['--dicom', '11112', '--stable-after', '1s'] }, timeoutMs: 20_000, started: netns.track }
  )

  const seen = await waitFor(
    'the reader connected to the site',
    async () => (await peers(reader)).find(p => p.peerId === site.peerId),
    40_000
  )
  assert.is(seen.link, 'relayed', JSON.stringify(seen))
  assert.is(seen.relay?.peerId, relay.peerId)
  // The reader was given no --relay-via: its addresses are all private, so it holds a reservation on the member
  // relay it is connected to by itself, and says members reach it only through relays.
  const reach = await waitFor(
    "the reader's own reservation",
    async () => {
      const body = (await reader.api<Reach>('GET', '/api/reach')).body
      return body.relays.some(r => r.peerId === relay.peerId) ? body : undefined
    },
    20_000
  )
  assert.is(reach.reachable, 'relays-only', JSON.stringify(reach))
  assert.equal(reach.publicAddrs, [])
  assert.is(reach.reservationsWanted, 2)
  // The relay saw each of them from its NAT's public address, not from its LAN address.
  const atRelay = await peers(relay)
  const siteAtRelay = atRelay.find(p => p.peerId === site.peerId)
  assert.ok(
    siteAtRelay?.addrs.some(a => a.includes('/ip4/10.99.0.2/')),
    JSON.stringify(atRelay)
  )

  const { study, caseId } = await claimedHeadCt(site, net.mgmt.site, reader, { slices: 16, seed: 1818 })
  const availability = `/api/studies/${study.studyInstanceUid}/availability`
  await waitFor(
    'the study transferred (every chunk verified) through the relay',
    async () => (await reader.api<{ complete: boolean }>('GET', availability)).body.complete,
    90_000
  )

  const findings = 'No haemorrhage. Read behind two NATs.'
  const written = await reader.api('PUT', `/api/cases/${caseId}/report`, { sections: { findings } })
  assert.is(written.status, 200, JSON.stringify(written.body))
  await waitFor(
    'the report at the site',
    async () =>
      (await site.api<{ sections?: { findings?: string } }>('GET', `/api/cases/${caseId}/report`)).body.sections
        ?.findings === findings,
    20_000
  )
  assert.is((await peers(reader)).find(p => p.peerId === site.peerId)?.link, 'relayed')
})

test.run()
