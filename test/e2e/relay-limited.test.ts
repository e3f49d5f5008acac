/**
 * A relay with limits (`--relay-data-limit`, `--relay-duration-limit`): the relayed link is "limited" in libp2p's
 * sense, and only the protocols that opt in run on it. The member documents (sync) do: a site and a reader that
 * reach each other only through a limited relay still share the worklist, so the reader sees the site's case.
 * Studies (the exchange) do not: they wait for a direct or unlimited link (README, "NAT and relays").
 */
import { test } from 'uvu'
import { nodesOfTests } from '../helpers/nodes.ts'
import * as assert from 'uvu/assert'
import type { ConnectedMember } from '../../protocol/api/peers.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { knowsRadiologists, p2pAddr, type StartedNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const nodes = nodesOfTests(test, 'Limited', { extraArgs: ['--stable-after', '1s'] })
const { start } = nodes

const peers = async (node: StartedNode): Promise<ConnectedMember[]> =>
  (await node.api<ConnectedMember[]>('GET', '/api/peers')).body

test('through a relay with limits, the worklist still reaches a reader the site cannot dial', async () => {
  const relay = await start(await nodes.member('Limited Relay', 'site'), {
    extraArgs: ['--relay', '--relay-data-limit', '64MiB', '--relay-duration-limit', '10m']
  })
  // Both announce only addresses no one can reach (TEST-NET-1): they meet only through the relay.
  const site = await start(await nodes.member('Limited Site', 'site'), {
    dicom: true,
    extraArgs: ['--relay-via', p2pAddr(relay), '--announce', '/ip4/192.0.2.1/tcp/9']
  })
  await waitFor('the site at the relay', async () => (await peers(relay)).some(p => p.peerId === site.peerId), 15_000)
  const reader = await start(await nodes.member('Dr Limited', 'radiologist', [], ['--subspecialty', 'neuro']), {
    peers: [`${p2pAddr(relay)}/p2p-circuit/p2p/${site.peerId}`],
    extraArgs: ['--announce', '/ip4/192.0.2.2/tcp/9']
  })
  const link = await waitFor(
    'the reader linked to the site',
    async () => (await peers(reader)).find(p => p.peerId === site.peerId),
    30_000
  )
  assert.is(link.link, 'relayed')
  assert.ok(link.limited !== undefined, `the relayed link runs under the relay's limits: ${JSON.stringify(link)}`)
  await knowsRadiologists(site, 1, 20_000)
  const dir = await tempDir()
  const study = await generateCt({
    out: dir,
    slices: 4,
    series: 1,
    rows: 32,
    columns: 32,
    seed: 1820,
    studyDescription: 'CT HEAD STROKE PROTOCOL',
    bodyPart: 'HEAD'
  })
  assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  type Entry = { caseId: string; studyInstanceUid: string }
  await waitFor(
    "the case on the reader's worklist, through the limited relay",
    async () =>
      (await reader.api<Entry[]>('GET', '/api/worklist')).body.find(e => e.studyInstanceUid === study.studyInstanceUid),
    30_000
  )
})

test.run()
