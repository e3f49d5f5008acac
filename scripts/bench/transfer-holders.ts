/**
 * Transfer benchmark, two holders (`npm run bench -- transfer --holders 2 --mbit N`): the same synthetic CT
 * fetched by a reader from one holder, then from two, each holder behind its own N Mbit/s rate-limiting proxy
 * (scripts/lib/fault-proxy.ts). One holder: site -> reader through one proxy. Two holders: the site shares
 * with a first and a second reader; the first fetches the whole study directly (not timed: it becomes a
 * holder), then the second fetches from the site and the first reader, each through its own proxy.
 * Prints the times, the two-holder time over the one-holder time (goal: at most 0.6), the bytes each link
 * carried, and peak RSS (VmHWM) of every process at both ends. Each reader is checked afterwards: every
 * instance listed by QIDO-RS, a random sample byte-identical by WADO-RS.
 */
import type { GeneratedStudy } from '../generate-ct.ts'
import { createScratchConsortium } from '../lib/consortium.ts'
import { type FaultProxy, startFaultProxy } from '../lib/fault-proxy.ts'
import { connected, p2pAddr, type StartedNode, startNode } from '../lib/node-process.ts'
import { freePort } from '../lib/ports.ts'
import { type Contender, peakRss, type Run, runRounds, type Summary, timeStorescu } from './common.ts'
import { fetchStudy, verify } from './transfer-verify.ts'

const linkTo = async (node: StartedNode, mbit: number): Promise<FaultProxy> =>
  await startFaultProxy({ target: { host: '127.0.0.1', port: node.p2pPort }, bitsPerSecond: mbit * 1e6 })
const via = (proxy: FaultProxy, node: StartedNode): string => `/ip4/127.0.0.1/tcp/${proxy.port}/p2p/${node.peerId}`
/** A reader that cannot be dialled (it announces a port nobody listens on): every byte it gets crosses a proxy. */
const undialable = async (): Promise<string[]> => ['--announce', `/ip4/127.0.0.1/tcp/${await freePort()}`]

/** Peak RSS of each process, the highest over the rounds, MB; and the bytes each link carried, last run. */
const rss = new Map<string, number>()
const noteRss = async (name: string, node: StartedNode): Promise<void> => {
  rss.set(name, Math.max(rss.get(name) ?? 0, await peakRss(node.process.pid)))
}
const links = new Map<string, number>()

export async function benchHolders(
  study: GeneratedStudy,
  studyDir: string,
  rounds: number,
  mbit: number
): Promise<void> {
  const studyUid = study.studyInstanceUid

  const oneHolder = async (): Promise<Run> => {
    const consortium = await createScratchConsortium('Bench')
    const site = await startNode(await consortium.member('Bench Site', 'site'), { dicom: true, preallocateMib: null })
    const proxy = await linkTo(site, mbit)
    const reader = await startNode(await consortium.member('Bench Reader', 'radiologist'), {
      peers: [via(proxy, site)],
      preallocateMib: null,
      extraArgs: await undialable()
    })
    try {
      await connected(site, reader, 15_000)
      await timeStorescu(site.dicomPort, 'RADMESH', studyDir)
      const shared = await site.api('POST', `/api/studies/${studyUid}/share`, { peerIds: [reader.peerId] })
      if (shared.status !== 200) throw new Error(`POST share answered ${shared.status}`)
      const seconds = await fetchStudy(reader, studyUid)
      links.set('one holder: site link', proxy.bytesFromTarget)
      await noteRss('one holder: site (sending)', site)
      await noteRss('one holder: reader (receiving)', reader)
      await verify(study, site, reader)
      return { seconds, rssMb: Math.max(...rss.values()) }
    } finally {
      await Promise.all([site.stop(), reader.stop()])
      await proxy.close()
    }
  }

  const twoHolders = async (): Promise<Run> => {
    const consortium = await createScratchConsortium('Bench')
    const site = await startNode(await consortium.member('Bench Site', 'site'), { dicom: true, preallocateMib: null })
    const first = await startNode(await consortium.member('Bench First Reader', 'radiologist'), {
      peers: [p2pAddr(site)],
      preallocateMib: null
    })
    const [siteLink, firstLink] = [await linkTo(site, mbit), await linkTo(first, mbit)]
    const second = await startNode(await consortium.member('Bench Second Reader', 'radiologist'), {
      peers: [via(siteLink, site), via(firstLink, first)],
      preallocateMib: null,
      extraArgs: await undialable()
    })
    try {
      await Promise.all([
        connected(site, first, 15_000),
        connected(site, second, 15_000),
        connected(first, second, 15_000)
      ])
      await timeStorescu(site.dicomPort, 'RADMESH', studyDir)
      const peerIds = [first.peerId, second.peerId]
      const shared = await site.api('POST', `/api/studies/${studyUid}/share`, { peerIds })
      if (shared.status !== 200) throw new Error(`POST share answered ${shared.status}`)
      await fetchStudy(first, studyUid)
      const [siteBefore, firstBefore] = [siteLink.bytesFromTarget, firstLink.bytesFromTarget]
      const seconds = await fetchStudy(second, studyUid)
      links.set('two holders: site link', siteLink.bytesFromTarget - siteBefore)
      links.set('two holders: first reader link', firstLink.bytesFromTarget - firstBefore)
      await noteRss('two holders: site (sending)', site)
      await noteRss('two holders: first reader (sending)', first)
      await noteRss('two holders: second reader (receiving)', second)
      await verify(study, site, second)
      return { seconds, rssMb: Math.max(...rss.values()) }
    } finally {
      await Promise.all([site.stop(), first.stop(), second.stop()])
      await Promise.all([siteLink.close(), firstLink.close()])
    }
  }

  const ways: Contender[] = [
    { name: 'radmesh, one holder', run: oneHolder },
    { name: 'radmesh, two holders', run: twoHolders }
  ]
  const [one, two] = (await runRounds(ways, rounds)) as [Summary, Summary]
  process.stdout.write(`median of ${rounds} rounds (order rotated), each holder behind its own ${mbit} Mbit/s link\n`)
  process.stdout.write('way                          seconds (min-max)      MB/s\n')
  for (const row of [one, two]) {
    const spread = row.runs === 0 ? 'no successful run' : `(${row.min.toFixed(2)}-${row.max.toFixed(2)})`
    const rate = row.runs === 0 ? '-' : (study.bytes / 1e6 / row.seconds).toFixed(0)
    const seconds = (row.runs === 0 ? '-' : row.seconds.toFixed(2)).padStart(7)
    process.stdout.write(`${row.name.padEnd(28)} ${seconds} ${spread.padEnd(13)}  ${rate.padStart(5)}\n`)
  }
  if (one.runs > 0 && two.runs > 0) {
    const ratio = (two.seconds / one.seconds).toFixed(2)
    process.stdout.write(`\ntwo holders' time / one holder's: ${ratio} (goal: at most 0.6)\n`)
  }
  process.stdout.write('bytes each link carried to the reader (last run):\n')
  for (const [link, bytes] of links) {
    process.stdout.write(`  ${link.padEnd(34)} ${(bytes / 1e6).toFixed(2).padStart(7)} MB\n`)
  }
  process.stdout.write('peak RSS (VmHWM), the highest over the rounds:\n')
  for (const [name, mb] of rss) process.stdout.write(`  ${name.padEnd(38)} ${mb.toFixed(0).padStart(5)} MB\n`)
  process.stdout.write(
    `(the study's ${(study.bytes / 1e6).toFixed(1)} MB at ${mbit} Mbit/s take ` +
      `${((study.bytes * 8) / (mbit * 1e6)).toFixed(2)} s uncompressed over one link)\n`
  )
}
