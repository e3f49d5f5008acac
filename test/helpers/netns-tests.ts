/**
 * What the network-namespace tests share (scripts/lib/netns.ts): whether namespaces can be made (as root, as CI
 * runs, a missing piece is a failure; otherwise the test says why it is skipped), the topology built and torn
 * down after the file's tests, the nodes started in it killed, and a node's `/api/peers`.
 */
import type { Test } from 'uvu'
import * as assert from 'uvu/assert'
import type { ConnectedMember } from '../../protocol/api/peers.ts'
import { type GeneratedStudy, generateCt } from '../../scripts/generate-ct.ts'
import { runTool } from '../../scripts/lib/dcmtk.ts'
import {
  buildNatTopology,
  type NamespacedNode,
  type Namespaces,
  netnsUnavailable,
  type TopologyOptions
} from '../../scripts/lib/netns.ts'
import { knowsRadiologists } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { caseOnWorklist } from './worklist.ts'

export interface NetnsTests {
  /** true when this test must be skipped (the reason printed); fails the test as root */
  skipped(): boolean
  /** the NAT topology, torn down after the file's tests */
  build(options?: TopologyOptions): Namespaces
  /** a node started in the topology, killed after the file's tests */
  track(node: NamespacedNode): NamespacedNode
}

export function netnsTests(suite: Test): NetnsTests {
  const unavailable = netnsUnavailable()
  const nodes: NamespacedNode[] = []
  const topologies: Namespaces[] = []
  suite.after(async () => {
    await Promise.all(nodes.map(async node => await node.kill()))
    for (const net of topologies) net.teardown()
  })
  return {
    skipped: () => {
      if (unavailable === undefined) return false
      // CI runs as root with nftables installed (scripts/system-deps.ts): there a missing piece is a failure.
      if (process.getuid?.() === 0) assert.unreachable(`network namespaces unavailable as root: ${unavailable}`)
      process.stdout.write(`skipped: network namespaces unavailable (${unavailable})\n`)
      return true
    },
    build: options => {
      const net = buildNatTopology(options)
      topologies.push(net)
      return net
    },
    track: node => {
      nodes.push(node)
      return node
    }
  }
}

export const peers = async (node: NamespacedNode): Promise<ConnectedMember[]> =>
  (await node.api<ConnectedMember[]>('GET', '/api/peers')).body

/**
 * A STAT head CT of `slices` (of `size`² pixels, 64 by default) pushed by storescu to the site's DICOM port (11112 on its management address), once
 * the site knows the reader; its case waited for on the reader's worklist and claimed (so the reader fetches it).
 */
export async function claimedHeadCt(
  site: NamespacedNode,
  siteMgmt: string,
  reader: NamespacedNode,
  { slices, seed, size = 64 }: { slices: number; seed: number; size?: number }
): Promise<{ study: GeneratedStudy; caseId: string }> {
  await knowsRadiologists(site, 1, 20_000)
  const dir = await tempDir()
  const study = await generateCt({
    out: dir,
    slices,
    series: 1,
    rows: size,
    columns: size,
    seed,
    studyDescription: 'CT HEAD STROKE PROTOCOL',
    bodyPart: 'HEAD'
  })
  const sent = await runTool('storescu', ['-aec', 'RADMESH', '-aet', 'TESTSCU', '+sd', '+r', siteMgmt, '11112', dir])
  assert.is(sent.code, 0, sent.stderr)
  const entry = await caseOnWorklist(reader, study.studyInstanceUid, 40_000)
  assert.is((await reader.api('POST', `/api/worklist/${entry.caseId}/claim`)).status, 200)
  return { study, caseId: entry.caseId }
}
