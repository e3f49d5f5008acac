/**
 * The study exchange over bad links, in separate processes over real libp2p. The site is reachable only
 * through a userland fault proxy (the address it announces); the reader, as behind a NAT, cannot be dialled
 * at all (it announces a closed port), so every byte between them crosses the proxy and is counted there:
 * - the receiver killed with SIGKILL at 10 %, 20 %, … 90 % of a transfer and restarted each time;
 * - a 20 Mbit/s link with 100 ms latency that is cut every few seconds.
 * The study arrives intact both times, and the bytes moved stay close to the study's size.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { WINDOW_BYTES } from '../../protocol/exchange/messages.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createTestConsortium, type TestConsortium } from '../helpers/consortium.ts'
import { storescu } from '../helpers/dcmtk.ts'
import { type FaultProxy, type FaultProxyOptions, startFaultProxy } from '../helpers/fault-proxy.ts'
import { freePort, peersOf, type StartedNode, startNode, tempDir, waitFor } from '../helpers/processes.ts'

interface Availability { instancesTotal: number, instancesLocal: number, bytesTotal: number, bytesLocal: number, complete: boolean, state: string, error?: string }
interface InstanceInfo { sha256: string }

let consortium: TestConsortium
const started: StartedNode[] = []
const proxies: FaultProxy[] = []

/** A node on its own ports that other members dial only at the address it announces. */
interface ProxiedNode { home: string, node: StartedNode, addr: string, options: Parameters<typeof startNode>[1] }

/** The site: announced as a fault proxy in front of it. */
async function startBehindProxy (home: string, link: Omit<FaultProxyOptions, 'target'>, extra: Parameters<typeof startNode>[1] = {}): Promise<{ proxied: ProxiedNode, proxy: FaultProxy }> {
  const ports = { p2pPort: await freePort(), wsPort: await freePort(), httpPort: await freePort() }
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: ports.p2pPort }, ...link })
  proxies.push(proxy)
  const options = { ...extra, ...ports, extraArgs: ['--announce', `/ip4/127.0.0.1/tcp/${proxy.port}`] }
  const node = await startNode(home, options)
  started.push(node)
  return { proxied: { home, node, addr: `/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${node.peerId}`, options }, proxy }
}

/** The reader: as behind a NAT, it dials out and cannot be dialled (it announces a port nobody listens on). */
async function startUndialable (home: string, peers: string[]): Promise<ProxiedNode> {
  const ports = { p2pPort: await freePort(), wsPort: await freePort(), httpPort: await freePort() }
  const options = { peers, ...ports, extraArgs: ['--announce', `/ip4/127.0.0.1/tcp/${await freePort()}`] }
  const node = await startNode(home, options)
  started.push(node)
  return { home, node, addr: '', options }
}

async function restart (proxied: ProxiedNode): Promise<void> {
  proxied.node = await startNode(proxied.home, proxied.options)
  started.push(proxied.node)
}

async function availability (node: StartedNode, studyUid: string): Promise<Availability> {
  return (await node.api<Availability>('GET', `/api/studies/${studyUid}/availability`)).body
}

async function hashes (node: StartedNode, sops: string[]): Promise<string[]> {
  return await Promise.all(sops.map(async sop => (await node.api<InstanceInfo>('GET', `/api/instances/${sop}`)).body.sha256))
}

/** Bytes that crossed the proxy, both directions. */
const bytesThrough = (proxy: FaultProxy): number => proxy.bytesToTarget + proxy.bytesFromTarget

async function siteWithStudy (name: string, link: Omit<FaultProxyOptions, 'target'>, slices: number, rows: number, seed: number): Promise<{ site: ProxiedNode, proxy: FaultProxy, studyUid: string, bytes: number }> {
  const { proxied: site, proxy } = await startBehindProxy(await consortium.member(name, 'site'), link, { dicom: true })
  const dir = await tempDir()
  const study = await generateCt({ out: dir, slices, rows, columns: rows, seed })
  const sent = await storescu(site.node.dicomPort, 'RADMESH', ['+sd', '+r', dir])
  assert.is(sent.code, 0, sent.stderr)
  return { site, proxy, studyUid: study.studyInstanceUid, bytes: study.bytes }
}

async function share (site: ProxiedNode, reader: ProxiedNode, studyUid: string): Promise<void> {
  await waitFor('site and reader to see each other', async () => (await peersOf(site.node)).some(p => p.peerId === reader.node.peerId), 15_000)
  const shared = await site.node.api('POST', `/api/studies/${studyUid}/share`, { peerIds: [reader.node.peerId] })
  assert.is(shared.status, 200, JSON.stringify(shared.body))
}

test.before(async () => {
  consortium = await createTestConsortium('Faults')
})

test.after(async () => {
  await Promise.all(started.map(async node => { await node.kill() }))
  await Promise.all(proxies.map(async proxy => { await proxy.close() }))
})

test('SIGKILL of the receiver at 10 %, 20 %, … 90 %: it resumes each time; nothing corrupt; nothing fetched twice beyond what was in flight', async () => {
  const link = { bitsPerSecond: 160_000_000 }
  const { site, proxy, studyUid, bytes } = await siteWithStudy('Kill Site', link, 300, 256, 21)
  const reader = await startUndialable(await consortium.member('Kill Reader', 'radiologist'), [site.addr])
  await share(site, reader, studyUid)
  assert.is((await reader.node.api('POST', `/api/studies/${studyUid}/fetch`)).status, 202)
  let total = 0
  for (let tenth = 1; tenth <= 9; tenth++) {
    const reached = await waitFor(`${tenth * 10} % of the study`, async () => {
      const a = await availability(reader.node, studyUid)
      total = a.instancesTotal
      return total > 0 && a.instancesLocal >= (tenth * total) / 10 ? a.instancesLocal : undefined
    }, 60_000, 10)
    assert.ok(reached < total, `killed before the end (${reached} of ${total})`)
    await reader.node.kill()
    await restart(reader)
  }
  await waitFor('the study to complete after the last restart', async () => {
    const a = await availability(reader.node, studyUid)
    if (a.state === 'failed') throw new Error(`fetch failed: ${a.error}`)
    return a.complete
  }, 60_000)
  const sops = (await site.node.api<Array<Record<string, { Value?: string[] }>>>('GET', `/dicom-web/studies/${studyUid}/series`)).body
    .map(series => series['0020000E']?.Value?.[0] as string)
  const instanceSops: string[] = []
  for (const series of sops) {
    const list = await (await site.node.fetch(`/dicom-web/studies/${studyUid}/series/${series}/instances?limit=100000`, { headers: { accept: 'application/dicom+json' } })).json() as Array<Record<string, { Value?: string[] }>>
    instanceSops.push(...list.map(entry => entry['00080018']?.Value?.[0] as string))
  }
  assert.is(instanceSops.length, 300)
  assert.equal(await hashes(reader.node, instanceSops), await hashes(site.node, instanceSops), 'every instance identical to the site\'s')
  const moved = bytesThrough(proxy)
  const bound = bytes + 9 * WINDOW_BYTES + 2_000_000
  process.stdout.write(`\n    [kill -9 x9] study ${(bytes / 1e6).toFixed(1)} MB, moved ${(moved / 1e6).toFixed(1)} MB (${(moved / bytes).toFixed(3)}x); bound ${(bound / 1e6).toFixed(1)} MB\n`)
  assert.ok(moved <= bound, `moved ${moved} bytes for a ${bytes}-byte study: more than the chunks in flight at nine kills`)
})

test('a 20 Mbit/s link with 100 ms latency, cut every few seconds: the study arrives intact, at most 1.05x its size moved', async () => {
  const link = { bitsPerSecond: 20_000_000, latencyMs: 100, cutEveryMs: 3_000 }
  const { site, proxy, studyUid, bytes } = await siteWithStudy('Rural Site', link, 40, 512, 22)
  const reader = await startUndialable(await consortium.member('Rural Reader', 'radiologist'), [site.addr])
  await share(site, reader, studyUid)
  const before = bytesThrough(proxy)
  assert.is((await reader.node.api('POST', `/api/studies/${studyUid}/fetch`)).status, 202)
  await waitFor('the study to arrive over the bad link', async () => {
    const a = await availability(reader.node, studyUid)
    if (a.state === 'failed') throw new Error(`fetch failed: ${a.error}`)
    return a.complete
  }, 120_000, 200)
  const moved = bytesThrough(proxy) - before
  const cuts = proxy.cuts
  process.stdout.write(`\n    [bad link] study ${(bytes / 1e6).toFixed(1)} MB, moved ${(moved / 1e6).toFixed(2)} MB (${(moved / bytes).toFixed(3)}x), ${cuts} cuts\n`)
  assert.ok(cuts >= 2, `the link was cut (${cuts} cuts)`)
  assert.ok(moved <= 1.05 * bytes, `moved ${moved} bytes for a ${bytes}-byte study (${(moved / bytes).toFixed(3)}x)`)
})

test.run()
