/**
 * UDP hole punching with WebRTC (`--webrtc`), in network namespaces (scripts/lib/netns.ts): a site and a reader
 * each behind its own NAT, a relay member on the WAN that also answers STUN. They first connect through the
 * relay; the reader or the site (the smaller peer id) dials the other's `/p2p-circuit/webrtc` address, the SDP
 * and ICE candidates go over the relayed link, ICE punches through both NATs, and the WebRTC link replaces the
 * relayed one: /api/peers says `direct` over `webrtc` on both sides, and a study transfers over it. Behind a
 * symmetric NAT hole punching cannot work: the attempt fails within the dial timeout and the members stay
 * relayed (the study still transfers). Skipped (with the reason) only when not run as root; as root (CI) a
 * missing `nft` fails it.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { type NamespacedNode, type NatKind, startBehindNats } from '../../scripts/lib/netns.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { claimedHeadCt, netnsTests, peers } from '../helpers/netns-tests.ts'

const netns = netnsTests(test)

/** The relay, the site (a reservation on it) and the reader (dials the site through it), all with --webrtc. */
async function threeMembers(natB: NatKind): Promise<{
  relay: NamespacedNode
  site: NamespacedNode
  reader: NamespacedNode
  siteMgmt: string
  /** the lines of the site's and the reader's node.log that match `pattern` */
  logged(pattern: RegExp): Promise<string[]>
  stop(): Promise<void>
}> {
  const net = netns.build({ natB })
  const consortium = await createScratchConsortium('Hole punch')
  const siteHome = await consortium.member('NAT Site', 'site')
  const readerHome = await consortium.member('Dr Punch', 'radiologist', [], ['--subspecialty', 'neuro'])
  const nodes: NamespacedNode[] = []
  const { relay, site, reader } = await startBehindNats(
    net,
    { relay: await consortium.member('WAN Relay', 'site'), site: siteHome, reader: readerHome },
    {
      args: {
        relay: ['--webrtc'],
        site: ['--webrtc', '--dicom', '11112', '--stable-after', '1s'],
        reader: ['--webrtc']
      },
      timeoutMs: 20_000,
      started: node => {
        nodes.push(netns.track(node))
      }
    }
  )
  return {
    relay,
    site,
    reader,
    siteMgmt: net.mgmt.site,
    logged: async pattern => {
      const logs = await Promise.all([siteHome, readerHome].map(home => fs.readFile(join(home, 'node.log'), 'utf8')))
      return logs.flatMap(text => text.split('\n')).filter(line => pattern.test(line))
    },
    stop: async () => {
      await Promise.all(nodes.map(async node => await node.kill()))
      net.teardown()
    }
  }
}

/**
 * Waits for the whole study at the reader (every chunk verified, its availability complete); its fetches, summed
 * from the reader's log. A STAT study is fetched while the site still receives it: one fetch per version.
 */
const transferred = async (
  reader: NamespacedNode,
  studyUid: string,
  logged: (pattern: RegExp) => Promise<string[]>
): Promise<string> => {
  await waitFor(
    'the whole study at the reader (every chunk verified)',
    async () => (await reader.api<{ complete: boolean }>('GET', `/api/studies/${studyUid}/availability`)).body.complete,
    90_000,
    100
  )
  // The last fetch's line may follow its availability by a moment.
  const fetches = await waitFor(
    "the reader's fetch-complete lines",
    async () => {
      const lines = (await logged(/"event":"fetch-complete"/)).filter(l => l.includes(studyUid))
      return lines.length > 0 ? lines.map(l => JSON.parse(l) as { bytes: number; seconds: number }) : undefined
    },
    10_000
  )
  const seconds = fetches.reduce((t, f) => t + f.seconds, 0)
  const mb = Math.max(0, ...fetches.map(f => f.bytes)) / 1048576
  return `${mb.toFixed(1)} MB in ${fetches.length} fetch(es), ${seconds.toFixed(2)} s fetching`
}

test('two members behind their own NATs: the relayed link becomes a direct WebRTC one, and a study moves over it', async () => {
  if (netns.skipped()) return
  const { site, reader, siteMgmt, relay, logged, stop } = await threeMembers('cone')
  try {
    const started = Date.now()
    const relayed = await waitFor(
      'the reader connected to the site',
      async () => (await peers(reader)).find(p => p.peerId === site.peerId),
      40_000,
      50
    )
    const firstLink = Date.now() - started
    const direct = async (node: NamespacedNode, peerId: string) => {
      const seen = (await peers(node)).find(p => p.peerId === peerId)
      return seen?.link === 'direct' && seen.transport === 'webrtc' && seen.addrs.every(a => a.includes('/webrtc'))
        ? seen
        : undefined
    }
    const atReader = await waitFor(
      'a WebRTC link and no relayed one, at the reader',
      () => direct(reader, site.peerId),
      30_000,
      50
    )
    const webrtcAfter = Date.now() - started
    const atSite = await waitFor(
      'a WebRTC link and no relayed one, at the site',
      () => direct(site, reader.peerId),
      10_000
    )
    process.stdout.write(
      `    [hole punch] first link ${firstLink} ms (${relayed.link}), WebRTC only ${webrtcAfter} ms after the reader started\n` +
        `    reader sees ${atReader.addrs}\n    site sees ${atSite.addrs}\n`
    )
    const [upgraded] = await logged(/"event":"link-upgraded"/)
    assert.ok(upgraded?.includes('/webrtc/'), `logged: ${upgraded}`)
    process.stdout.write(`    ${upgraded}\n`)

    const { study } = await claimedHeadCt(site, siteMgmt, reader, { slices: 20, seed: 1820, size: 256 })
    process.stdout.write(
      `    [hole punch] study of 20 slices of 256² over WebRTC: ${await transferred(reader, study.studyInstanceUid, logged)}\n`
    )
    for (const [node, peerId] of [
      [reader, site.peerId],
      [site, reader.peerId]
    ] as const) {
      const after = (await peers(node)).find(p => p.peerId === peerId)
      assert.is(after?.transport, 'webrtc', JSON.stringify(after))
      assert.ok(
        after?.addrs.every(a => a.includes('/webrtc')),
        `no relayed link was reopened for the transfer: ${after?.addrs}`
      )
    }
    // The relay still has both (their reservations and links), but carries none of their traffic.
    assert.ok((await peers(relay)).length >= 2)
  } finally {
    await stop()
  }
})

test('behind a symmetric NAT: the WebRTC attempt fails quickly and cleanly, and the members stay relayed', async () => {
  if (netns.skipped()) return
  const { site, reader, siteMgmt, logged, stop } = await threeMembers('symmetric')
  try {
    await waitFor(
      'the reader connected to the site',
      async () => (await peers(reader)).find(p => p.peerId === site.peerId),
      40_000
    )
    const failed = await waitFor(
      'the WebRTC attempt to fail',
      async () => (await logged(/"event":"link-upgrade-failed".*\/webrtc\//))[0],
      30_000
    )
    process.stdout.write(`    ${failed}\n`)
    // Neither side ever shows a direct link: @libp2p/webrtc's answering side upgrades a WebRTC connection whose
    // ICE never completed when the dialler gives up (see DirectUpgrader's probe); it must not count.
    const seenLinks = new Set<string>()
    for (const until = Date.now() + 8_000; Date.now() < until; ) {
      for (const [node, peerId] of [
        [reader, site.peerId],
        [site, reader.peerId]
      ] as const) {
        const link = (await peers(node)).find(p => p.peerId === peerId)
        seenLinks.add(`${node === site ? 'site' : 'reader'} ${link?.link} ${link?.transport ?? ''} ${link?.addrs}`)
      }
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    process.stdout.write(`    links seen after the failure:\n      ${[...seenLinks].join('\n      ')}\n`)
    const lastSeen = [...seenLinks].at(-1)
    assert.ok(lastSeen?.includes(' relayed '), `the answering side's dead WebRTC link was aborted: ${lastSeen}`)
    const dead = await logged(/"event":"webrtc-link-dead"/)
    process.stdout.write(`    ${dead[0] ?? 'no dead WebRTC link to abort'}\n`)
    const seen = (await peers(reader)).find(p => p.peerId === site.peerId)
    assert.is(seen?.link, 'relayed', JSON.stringify(seen))
    const { study } = await claimedHeadCt(site, siteMgmt, reader, { slices: 20, seed: 1821, size: 256 })
    process.stdout.write(
      `    [symmetric] study of 20 slices of 256² through the relay: ${await transferred(reader, study.studyInstanceUid, logged)}\n`
    )
    assert.is((await peers(reader)).find(p => p.peerId === site.peerId)?.link, 'relayed')
  } finally {
    await stop()
  }
})

test.run()
