/**
 * Seeded randomized convergence, in the spirit of Yjs's own random tests, over real nodes in separate
 * processes: a site and radiologists (three unless told, below), every pair linked through its own fault
 * proxy. Random claims, releases, consults, edits and signatures, while random partitions cut the links and
 * random `kill -9`s take nodes down (they restart from disk). After healing, every node must show the same
 * worklist and the same reports, every acknowledged edit of a report that is not FINAL must be in it, and no
 * FINAL report may differ from what its signer signed. A failure prints the seed; run it again with
 * RADMESH_SEED=N.
 *
 * RADMESH_CONVERGENCE_STEPS (default 40) makes a longer soak; RADMESH_CONVERGENCE_NODES (default 4: the site
 * and three radiologists) a larger consortium (`npm run bench -- scale --part convergence` runs 30).
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { type FaultProxy, startFaultProxy } from '../../scripts/lib/fault-proxy.ts'
import { freePort } from '../../scripts/lib/ports.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const SEED = Number(process.env['RADMESH_SEED'] ?? Math.floor(Math.random() * 2 ** 31))
const STEPS = Number(process.env['RADMESH_CONVERGENCE_STEPS'] ?? 40)
const NODES = Math.max(2, Number(process.env['RADMESH_CONVERGENCE_NODES'] ?? 4))
/** Waits grow with the consortium: each node is a process of its own on the same few cores. */
const WAIT_SCALE = Math.max(1, NODES / 4)
const CASES = 3
const SECTIONS = ['findings', 'impression', 'comparison'] as const

/** mulberry32: small, seedable, good enough to pick operations */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const rng = random(SEED)
const pick = <T>(list: readonly T[]): T => list[Math.floor(rng() * list.length)] as T

interface Entry {
  caseId: string
  status: string
  claimedBy: string | null
  consultants: string[]
  claimedAt: string | null
  preliminaryAt: string | null
  finalAt: string | null
}
interface Report {
  status: string
  sections: Record<string, string>
  signatures: Array<{ peerId: string; status: string; verified: boolean }>
}
interface Member {
  name: string
  home: string
  options: Parameters<typeof startNode>[1]
  node: StartedNode
  up: boolean
}
interface Link {
  a: number
  b: number
  proxy: FaultProxy
}

const members: Member[] = []
const links: Link[] = []
const log: string[] = []
const say = (line: string): void => {
  log.push(line)
}

/** Starts a member's node again; how long its start took, for the log (it grows with the load on the cores). */
async function restart(member: Member): Promise<string> {
  const begun = performance.now()
  member.node = await startNode(member.home, member.options)
  member.up = true
  return `${((performance.now() - begun) / 1000).toFixed(1)} s`
}

test.after(async () => {
  await Promise.all(
    members.map(async m => {
      await m.node.kill()
    })
  )
  await Promise.all(
    links.map(async l => {
      await l.proxy.close()
    })
  )
})

const RUN = `seed ${SEED}, ${STEPS} steps, ${NODES} nodes`
test(`randomized claims, edits and signatures under partitions and kill -9 converge (${RUN})`, async () => {
  const consortium = await createScratchConsortium('Convergence')
  const names = Array.from({ length: NODES - 1 }, (_, i) => `R${i + 1}`)
  const siteHome = await consortium.member('Site', 'site')
  const homes = [
    siteHome,
    ...(await Promise.all(names.map(async name => await consortium.member(name, 'radiologist'))))
  ]
  // Every pair (i < j) talks only through its own proxy: i dials j there; j announces an address nobody listens on.
  const peerIds = await Promise.all(
    homes.map(
      async home => (JSON.parse(await fs.readFile(join(home, 'profile.json'), 'utf8')) as { peerId: string }).peerId
    )
  )
  // Nodes start from the last to the first, each on ports picked just before it starts (other programs pick ports
  // too: with 30 nodes, a port picked minutes ahead was once taken by then), each pair's proxy once its target is up.
  const p2pPorts: number[] = []
  for (let i = homes.length - 1; i >= 0; i--) {
    const ports = { p2pPort: await freePort(), wsPort: await freePort(), httpPort: await freePort() }
    p2pPorts[i] = ports.p2pPort
    for (let j = i + 1; j < homes.length; j++) {
      const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: p2pPorts[j] as number } })
      links.push({ a: i, b: j, proxy })
    }
    const peers = links.filter(l => l.a === i).map(l => `/ip4/127.0.0.1/tcp/${l.proxy.port}/p2p/${peerIds[l.b]}`)
    const extraArgs = ['--announce', `/ip4/127.0.0.1/tcp/${await freePort()}`, '--stable-after', '1s']
    // A node starting among many others on 2 cores waits for the CPU: its start may take WAIT_SCALE times longer.
    const startTimeoutMs = 20_000 * WAIT_SCALE
    const options = { ...ports, dicom: i === 0 ? await freePort() : false, peers, extraArgs, startTimeoutMs }
    const home = homes[i] as string
    members[i] = { name: i === 0 ? 'site' : `R${i}`, home, options, node: await startNode(home, options), up: true }
  }
  const site = members[0] as Member
  const readers = members.slice(1)
  const api = async <T>(
    member: Member,
    method: string,
    path: string,
    body?: unknown
  ): Promise<{ status: number; body: T }> => await member.node.api<T>(method, path, body)

  await waitFor(
    `the site to know the ${NODES - 1} radiologists`,
    async () => (await api<unknown[]>(site, 'GET', '/api/duty')).body.length === NODES - 1,
    30_000 * WAIT_SCALE
  )
  for (let n = 0; n < CASES; n++) {
    const dir = await tempDir()
    await generateCt({
      out: dir,
      slices: 2,
      rows: 16,
      columns: 16,
      seed: 100 + n,
      studyDescription: 'MRI KNEE',
      bodyPart: 'KNEE'
    })
    assert.is((await storescu(site.node.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  }
  await waitFor(
    'every reader to list the cases',
    async () => {
      for (const reader of readers)
        if ((await api<Entry[]>(reader, 'GET', '/api/worklist')).body.length !== CASES) return false
      return true
    },
    30_000 * WAIT_SCALE
  )
  const caseIds = (await api<Entry[]>(site, 'GET', '/api/worklist')).body.map(e => e.caseId).sort()

  const acknowledged: Array<{ caseId: string; section: string; token: string; by: number }> = []
  const finals = new Map<string, { sections: Record<string, string>; by: number }>()
  let partitioned = 0
  let token = 0

  /**
   * Edits and signatures go to a reader that holds or consults the case as far as its own node knows (a
   * reader picked at random would mostly be refused, and a seed could then write nothing at all).
   */
  const writerOf = async (caseId: string, fallback: Member): Promise<Member> => {
    const writers: Member[] = []
    for (const member of readers) {
      if (!member.up) continue
      const entry = (await api<Entry[]>(member, 'GET', '/api/worklist')).body.find(c => c.caseId === caseId)
      if (
        entry !== undefined &&
        (entry.claimedBy === member.node.peerId || entry.consultants.includes(member.node.peerId))
      )
        writers.push(member)
    }
    return writers.length > 0 ? pick(writers) : fallback
  }

  const setPartition = (group: Set<number> | undefined): void => {
    for (const link of links) link.proxy.setBlocked(group !== undefined && group.has(link.a) !== group.has(link.b))
  }

  for (let step = 0; step < STEPS; step++) {
    const roll = rng()
    const reader = pick(readers)
    const caseId = pick(caseIds)
    if (partitioned > 0 && --partitioned === 0) {
      setPartition(undefined)
      say(`${step}: heal`)
    }
    if (roll < 0.08 && partitioned === 0) {
      const group = new Set(members.map((_, i) => i).filter(() => rng() < 0.5))
      if (group.size > 0 && group.size < members.length) {
        setPartition(group)
        partitioned = 2 + Math.floor(rng() * 4)
        say(`${step}: partition {${[...group].map(i => members[i]?.name).join(',')}} for ${partitioned} steps`)
      }
    } else if (roll < 0.14) {
      const victim = pick(members)
      if (victim.up) {
        await victim.node.kill()
        victim.up = false
        say(`${step}: kill -9 ${victim.name}`)
        if (rng() < 0.6) {
          say(`${step}: restart ${victim.name} (${await restart(victim)})`)
        }
      }
    } else if (!reader.up) {
      if (rng() < 0.5) {
        say(`${step}: restart ${reader.name} (${await restart(reader)})`)
      }
    } else if (roll < 0.34) {
      const { status } = await api(reader, 'POST', `/api/worklist/${caseId}/claim`)
      say(`${step}: ${reader.name} claims ${caseId.slice(0, 6)}: ${status}`)
    } else if (roll < 0.42) {
      const { status } = await api(reader, 'POST', `/api/worklist/${caseId}/release`)
      say(`${step}: ${reader.name} releases ${caseId.slice(0, 6)}: ${status}`)
    } else if (roll < 0.48) {
      const other = pick(readers.filter(m => m !== reader))
      const { status } = await api(reader, 'POST', `/api/cases/${caseId}/consult`, { peerId: other.node.peerId })
      say(`${step}: ${reader.name} consults ${other.name} on ${caseId.slice(0, 6)}: ${status}`)
    } else if (roll < 0.88) {
      const writer = await writerOf(caseId, reader)
      const current = await api<Report>(writer, 'GET', `/api/cases/${caseId}/report`)
      if (current.status !== 200) {
        say(`${step}: ${writer.name} cannot read the report of ${caseId.slice(0, 6)}: ${current.status}`)
        continue
      }
      const section = pick(SECTIONS)
      const word = `[t${++token}]`
      const { status } = await api(writer, 'PUT', `/api/cases/${caseId}/report`, {
        sections: { [section]: `${current.body.sections[section] ?? ''} ${word}`.trim() }
      })
      if (status === 200) acknowledged.push({ caseId, section, token: word, by: members.indexOf(writer) })
      say(`${step}: ${writer.name} writes ${word} in ${section} of ${caseId.slice(0, 6)}: ${status}`)
    } else {
      const status = rng() < 0.6 ? 'PRELIMINARY' : 'FINAL'
      const signer = await writerOf(caseId, reader)
      const signed = await api<Report>(signer, 'POST', `/api/cases/${caseId}/report/sign`, { status })
      if (signed.status === 200 && status === 'FINAL' && signed.body.status === 'FINAL')
        finals.set(caseId, { sections: signed.body.sections, by: members.indexOf(signer) })
      say(`${step}: ${signer.name} signs ${caseId.slice(0, 6)} ${status}: ${signed.status}`)
    }
    await new Promise(resolve => setTimeout(resolve, Math.floor(rng() * 200)))
  }

  setPartition(undefined)
  for (const member of members) if (!member.up) await restart(member)
  say('healed; every node up')

  const snapshot = async (member: Member): Promise<string> => {
    const list = (await api<Entry[]>(member, 'GET', '/api/worklist')).body
      .map(({ caseId, status, claimedBy, consultants, claimedAt, preliminaryAt, finalAt }) => ({
        caseId,
        status,
        claimedBy,
        consultants,
        claimedAt,
        preliminaryAt,
        finalAt
      }))
      .sort((a, b) => (a.caseId < b.caseId ? -1 : 1))
    const reports: Record<string, unknown> = {}
    for (const caseId of caseIds) {
      const { status, body } = await api<Report>(member, 'GET', `/api/cases/${caseId}/report`)
      if (status === 200)
        reports[caseId] = {
          status: body.status,
          sections: body.sections,
          signatures: body.signatures.map(s => `${s.peerId}:${s.status}:${s.verified}`).sort()
        }
    }
    return JSON.stringify({ list, reports })
  }
  const failWith = (message: string): never => {
    throw new Error(`${message}\nseed ${SEED} (RADMESH_SEED=${SEED} to replay)\n${log.join('\n')}`)
  }

  let snapshots: string[] = []
  try {
    await waitFor(
      'every node to show the same worklist',
      async () => {
        snapshots = await Promise.all(members.map(snapshot))
        const lists = snapshots.map(s => JSON.stringify((JSON.parse(s) as { list: unknown }).list))
        return lists.every(l => l === lists[0])
      },
      90_000 * WAIT_SCALE,
      500
    )
  } catch {
    failWith(
      'worklists differ after healing:\n' +
        snapshots
          .map((s, i) => `${members[i]?.name}: ${JSON.stringify((JSON.parse(s) as { list: unknown }).list)}`)
          .join('\n')
    )
  }

  // Reports: every node that may read a case's report shows the same one.
  try {
    await waitFor(
      'every participant to show the same reports',
      async () => {
        snapshots = await Promise.all(members.map(snapshot))
        const parsed = snapshots.map(s => (JSON.parse(s) as { reports: Record<string, unknown> }).reports)
        return caseIds.every(caseId => {
          const views = parsed
            .map(p => p[caseId])
            .filter(v => v !== undefined)
            .map(v => JSON.stringify(v))
          return views.every(v => v === views[0])
        })
      },
      60_000 * WAIT_SCALE,
      500
    )
  } catch {
    failWith(`reports differ after healing:\n${snapshots.map((s, i) => `${members[i]?.name}: ${s}`).join('\n')}`)
  }

  const final = (
    JSON.parse(snapshots[0] as string) as {
      reports: Record<string, { status: string; sections: Record<string, string> }>
    }
  ).reports
  for (const [caseId, signed] of finals) {
    const shown = final[caseId]
    if (shown === undefined) failWith(`the site cannot read the report of ${caseId}`)
    if (JSON.stringify(shown?.sections) !== JSON.stringify(signed.sections))
      failWith(
        `the FINAL report of ${caseId} changed:\nsigned ${JSON.stringify(signed.sections)}\n` +
          `shown ${JSON.stringify(shown?.sections)}`
      )
  }
  for (const edit of acknowledged) {
    const shown = final[edit.caseId]
    if (shown === undefined) failWith(`the site cannot read the report of ${edit.caseId}`)
    if (shown?.status === 'FINAL' || shown?.status === 'AMENDED') continue
    if (!(shown?.sections[edit.section] ?? '').includes(edit.token))
      failWith(
        `acknowledged edit ${edit.token} in ${edit.section} of ${edit.caseId} is missing: ` +
          JSON.stringify(shown?.sections)
      )
  }
  say(`${acknowledged.length} acknowledged edits, ${finals.size} FINAL reports checked`)
  if (process.env['RADMESH_CONVERGENCE_LOG'] !== undefined) process.stdout.write(`seed ${SEED}\n${log.join('\n')}\n`)
  assert.ok(acknowledged.length > 0, `the run made no edit (seed ${SEED})`)
})

test.run()
