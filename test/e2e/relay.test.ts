import { test } from 'uvu'
import { lastJsonLineOf } from '../helpers/intrude.ts'
import { nodesOfTests } from '../helpers/nodes.ts'
import * as assert from 'uvu/assert'
import type { ConnectedMember } from '../../protocol/api/peers.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { launchBrowser, pageErrors, signedInPage } from '../../scripts/lib/browser.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { connected, knowsRadiologists, logOf, p2pAddr, type StartedNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { caseOnWorklist } from '../helpers/worklist.ts'

const nodes = nodesOfTests(test, 'Relayed', { extraArgs: ['--stable-after', '1s'] })
const { start } = nodes

let relay: StartedNode
let site: StartedNode

const peers = async (node: StartedNode): Promise<ConnectedMember[]> =>
  (await node.api<ConnectedMember[]>('GET', '/api/peers')).body

test('a site and a reader that cannot dial each other connect through a member relay: worklist and study', async () => {
  relay = await start(await nodes.member('Hub Relay', 'site'), { extraArgs: ['--relay'] })
  // The site announces an address no one can reach (TEST-NET-1): members reach it only through the relay.
  site = await start(await nodes.member('Rural Site', 'site'), {
    dicom: true,
    extraArgs: ['--relay-via', p2pAddr(relay), '--announce', '/ip4/192.0.2.1/tcp/9']
  })
  await waitFor(
    'the site to hold a reservation on the relay',
    async () => (await peers(relay)).some(p => p.peerId === site.peerId),
    15_000
  )
  const readerHome = await nodes.member('Dr Home Reader', 'radiologist', [], ['--subspecialty', 'neuro'])
  // The reader too announces only an address no one can reach: with a dialable one, the site would upgrade the
  // relayed link to a direct one (libp2p dials a direct address it learns of a peer it reaches only by relay).
  const reader = await start(readerHome, {
    peers: [`${p2pAddr(relay)}/p2p-circuit/p2p/${site.peerId}`],
    extraArgs: ['--announce', '/ip4/192.0.2.2/tcp/9']
  })
  await connected(site, reader, 30_000)

  const seen = (await peers(reader)).find(p => p.peerId === site.peerId)
  assert.ok(seen !== undefined)
  assert.is(seen.link, 'relayed', JSON.stringify(seen))
  assert.is(seen.relay?.peerId, relay.peerId)
  assert.is(seen.relay?.name, 'Hub Relay')
  assert.ok(Date.now() - Date.parse(seen.since) < 60_000, seen.since)
  assert.is(seen.limited, undefined, 'a relay for members is unlimited unless it says otherwise')
  assert.ok(
    seen.addrs.every(addr => addr.includes(`/p2p/${relay.peerId}/p2p-circuit`)),
    seen.addrs.join(' ')
  )
  const atSite = (await peers(site)).find(p => p.peerId === reader.peerId)
  assert.is(atSite?.link, 'relayed')
  assert.is((await peers(relay)).find(p => p.peerId === site.peerId)?.link, 'direct')

  await knowsRadiologists(site, 1, 15_000)
  const dir = await tempDir()
  const study = await generateCt({
    out: dir,
    slices: 12,
    series: 1,
    rows: 64,
    columns: 64,
    seed: 18,
    studyDescription: 'CT HEAD STROKE PROTOCOL',
    bodyPart: 'HEAD'
  })
  assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  const entry = await caseOnWorklist(reader, study.studyInstanceUid, 30_000)
  // The reader's viewer marks the site, reached only through the relay, where the worklist names it.
  const browser = await launchBrowser()
  try {
    const page = await signedInPage(browser, reader)
    const mark = page.locator(`tr[data-case="${entry.caseId}"] .via-relay`)
    await mark.first().waitFor({ timeout: 15_000 })
    assert.match((await mark.first().getAttribute('title')) ?? '', /reached only through Hub Relay since /)
    assert.equal(pageErrors(page), [])
  } finally {
    await browser.close()
  }
  assert.is((await reader.api('POST', `/api/worklist/${entry.caseId}/claim`)).status, 200)
  const availability = `/api/studies/${study.studyInstanceUid}/availability`
  await waitFor(
    'the study transferred through the relay',
    async () => (await reader.api<{ complete: boolean }>('GET', availability)).body.complete,
    60_000
  )
  const still = (await peers(reader)).find(p => p.peerId === site.peerId)
  assert.is(still?.link, 'relayed', 'the transfer went through the relay')
})

test('a non-member gets no reservation on a member relay and no relayed stream to a member', async () => {
  type Attempt = { peerId: string; reserved: boolean; streamOpened: boolean }
  const result = await lastJsonLineOf<Attempt>('test/p2p/relay-intruder.ts', [p2pAddr(relay), site.peerId])
  assert.is(result.reserved, false, JSON.stringify(result))
  assert.is(result.streamOpened, false, JSON.stringify(result))
  const refused = (await logOf(relay.home)).filter(
    line => line['event'] === 'member-refused' && line['remotePeer'] === result.peerId
  )
  assert.ok(refused.length > 0, 'the relay refused it at the member handshake')
  assert.not.ok((await peers(site)).some(p => p.peerId === result.peerId))
})

test('a member with only private addresses holds reservations on two member relays without --relay-via', async () => {
  const second = await start(await nodes.member('Second Relay', 'site'), { extraArgs: ['--relay'] })
  const home = await start(await nodes.member('Dr Two Relays', 'radiologist'), {
    peers: [p2pAddr(relay), p2pAddr(second)]
  })
  type Reach = { relays: Array<{ peerId: string }>; reservationsWanted: number; addrs: string[] }
  const reach = await waitFor(
    'reservations on both relays',
    async () => {
      const body = (await home.api<Reach>('GET', '/api/reach')).body
      return body.relays.length === 2 ? body : undefined
    },
    20_000
  )
  assert.equal(reach.relays.map(r => r.peerId).sort(), [relay.peerId, second.peerId].sort())
  assert.is(reach.reservationsWanted, 2)
  // Both relay addresses are in its signed address record, for the other members.
  await waitFor(
    'both relay addresses in its record',
    async () => {
      const { addrs } = (await home.api<Reach>('GET', '/api/reach')).body
      return [relay.peerId, second.peerId].every(r => addrs.some(a => a.includes(`/p2p/${r}/p2p-circuit`)))
    },
    10_000
  )
})

test.run()
