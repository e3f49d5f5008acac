/**
 * The consortium of part 2 of the scale benchmark, made in this process with radmesh's own membership code
 * (as `radmesh consortium create`, `init`, `consortium admit` do): M members, one site per ten (at least
 * one), the rest radiologists. Each radiologist reads for two sites (one when there is one) and names them
 * with `--peer`; sites name nobody. So the links are the ones a consortium keeps after pruning (sites and
 * their readers), and the members document spreads through readers who serve two sites.
 *
 * Each site starts with CASES_PER_SITE open cases, each routed to three of its readers, written into its
 * HOME with radmesh's record, document and index code (real signed records): the readers get them when they
 * connect.
 */
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { recordKey, type WorklistRecord } from '../../protocol/collab/records.ts'
import { caseDocId } from '../../protocol/collab/sync.ts'
import type { PeerIdString } from '../../protocol/ids.ts'
import { StorageKey } from '../../node/archive/sealing.ts'
import { CaseIndex } from '../../node/worklist/case-index.ts'
import { deriveCases } from '../../node/worklist/cases.ts'
import { signWorklistRecord } from '../../node/worklist/records.ts'
import { DocStore } from '../../node/crdt/store.ts'
import { caseIdFor } from '../../node/workflow/workflow.ts'
import { RECORDS_MAP } from '../../node/worklist/records.ts'
import { loadMember } from '../../node/identity/member.ts'
import { openDatabase } from '../../node/store/database.ts'
import { homePaths } from '../../node/identity/home.ts'
import { initHome, joinHome, readJoinRequest } from '../../node/identity/member.ts'
import { admit, createConsortium, openConsortium } from '../../node/membership/consortium.ts'
import { ensureApiToken } from '../../node/node.ts'
import { freePort } from '../lib/ports.ts'
import { kb, percentile, say, table } from './scale-common.ts'

export const CASES_PER_SITE = 12
export const READERS_PER_CASE = 3

export interface BenchMember {
  index: number
  name: string
  role: 'site' | 'radiologist'
  home: string
  peerId: string
  p2pPort: number
  /** sites a radiologist reads for (indexes into the members) */
  sites: number[]
}

export interface BenchConsortium {
  members: BenchMember[]
  sites: BenchMember[]
  readers: BenchMember[]
}

/**
 * Starts a member, on another port if its own was taken meanwhile (other programs on this machine pick ports
 * too): its readers dial the port it got, since they start after it.
 */
export async function startOnFreePort<T>(member: BenchMember, start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start()
    } catch (error) {
      const text = `${(error as Error).message} ${(error as { output?: string }).output ?? ''}`
      if (!/address already in use/i.test(text) || attempt === 3) throw error
      member.p2pPort = await freePort()
    }
  }
}

export const siteCount = (members: number): number => Math.max(1, Math.round(members / 10))

export async function makeConsortium(root: string, count: number): Promise<BenchConsortium> {
  const dir = join(root, 'consortium')
  await createConsortium(dir, `Scale ${count}`)
  const consortium = await openConsortium(dir)
  const sites = siteCount(count)
  const members: BenchMember[] = []
  for (let i = 0; i < count; i++) {
    const role = i < sites ? 'site' : 'radiologist'
    const name = role === 'site' ? `Site ${i + 1}` : `Dr Reader ${i - sites + 1}`
    const home = join(root, `m${i}`)
    await initHome(home, { name, role, subspecialties: [] })
    await ensureApiToken(homePaths(home))
    const request = await readJoinRequest(homePaths(home).joinRequest)
    await joinHome(home, await admit(consortium, request), consortium.info)
    const r = i - sites
    const served = role === 'site' ? [] : sites === 1 ? [0] : [r % sites, (r + 1) % sites]
    members.push({ index: i, name, role, home, peerId: request.peerId, p2pPort: await freePort(), sites: served })
  }
  const bench = {
    members,
    sites: members.filter(m => m.role === 'site'),
    readers: members.filter(m => m.role === 'radiologist')
  }
  for (const site of bench.sites) await seedCases(site, readersOf(bench, site))
  return bench
}

/**
 * Writes a site's open cases into its stopped HOME, each signed by the site and routed to three of its readers
 * in turn: as scripts/lib/worklist-history.ts does, without its members document (every node publishes its
 * own member record when it starts; a second copy written here would clash with it).
 */
async function seedCases(site: BenchMember, readers: BenchMember[]): Promise<void> {
  const member = await loadMember(site.home)
  const db = await openDatabase(member.paths.database)
  const key = await StorageKey.load(member.paths.storageKey)
  const store = new DocStore(db, key)
  const index = new CaseIndex(db, key)
  try {
    for (let n = 0; n < CASES_PER_SITE; n++) {
      const at = new Date().toISOString()
      const studyUid = `2.25.${Date.now()}${String(n).padStart(4, '0')}`
      const caseId = caseIdFor(member.identity.peerId, studyUid)
      const routed = routeTo(readers, n * READERS_PER_CASE)
      const record: WorklistRecord = await signWorklistRecord(member.identity.privateKey, {
        v: 1,
        kind: 'case',
        caseId,
        studyUid,
        site: member.identity.peerId,
        siteName: member.certificate.name,
        priority: 'ROUTINE',
        subspecialty: 'general',
        modalities: ['CT'],
        bodyPart: 'HEAD',
        readers: routed.map(r => r.peerId).sort() as PeerIdString[],
        createdAt: at,
        dueAt: new Date(Date.now() + 86_400_000).toISOString(),
        by: member.identity.peerId,
        at
      })
      const doc = new Y.Doc()
      doc.getMap(RECORDS_MAP).set(recordKey(record), record)
      await store.append(caseDocId(caseId), Y.encodeStateAsUpdate(doc), false)
      const state = deriveCases([record]).get(caseId)
      if (state === undefined) throw new Error(`seeded case ${caseId} does not derive`)
      index.put(state, at, true)
    }
    await index.flushed()
  } finally {
    await db.close()
  }
}

export const readersOf = (bench: BenchConsortium, site: BenchMember): BenchMember[] =>
  bench.readers.filter(r => r.sites.includes(site.index))

export const addrOf = (member: BenchMember): string => `/ip4/127.0.0.1/tcp/${member.p2pPort}/p2p/${member.peerId}`

/** The `--peer` addresses of a member: a radiologist's sites. */
export const peersOf = (bench: BenchConsortium, member: BenchMember): string[] =>
  member.sites.map(i => addrOf(bench.members[i] as BenchMember))

/** READERS_PER_CASE of a site's readers, from the `from`th on, in turn. */
export const routeTo = (readers: BenchMember[], from: number): BenchMember[] =>
  Array.from(
    { length: Math.min(READERS_PER_CASE, readers.length) },
    (_, k) => readers[(from + k) % readers.length] as BenchMember
  )

export interface MembersOptions {
  sizes: number[]
  processes: number
  idleSeconds: number
  changes: number
}

/** What one run (in one process, or in separate ones) measured. */
export interface MembersRow {
  mode: string
  members: number
  sites: number
  /** libp2p connections open, counted once */
  links: number
  startSeconds: number
  /** members' records all known to every node, from the first start */
  meshSeconds: number
  /** per node: RSS (MB), CPU while idle (% of one core), idle bytes sent + received per minute */
  rssMbPerNode: number
  cpuIdlePercentPerNode: number
  idleBytesPerMinute: number[]
  idleBytesPerLinkMinute: number
  /** ms from the change to its arrival, per member it concerns */
  published: number[]
  claimed: number[]
  missing: number
  note: string
}

const ms = (values: number[]): string =>
  values.length === 0 ? '-' : `${percentile(values, 50).toFixed(0)} / ${percentile(values, 99).toFixed(0)} ms`
const labelled = (r: MembersRow): string => `${r.members}${r.mode === 'in-process' ? '' : `, ${r.mode}`}`
const mean = (values: number[]): number => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)

/** The figures of issue 14 before the work: idle traffic per node per minute. */
const IDLE_BEFORE: Record<number, string> = { 4: '24.7 KB', 12: '96 KB' }

export function printMembers(rows: MembersRow[], compare: boolean): void {
  say('per node (in one process: the process total divided by the nodes; idle: bytes sent + received on its libp2p')
  say('sockets, TCP payload, over the idle window, per minute; propagation: ms from the change to each member it')
  say('concerns; links: libp2p connections open, each counted once)')
  table(
    [
      'mode',
      'members',
      'sites',
      'links',
      'start all',
      'members known',
      'RSS/node',
      'idle CPU/node',
      'idle bytes/node/min (max)',
      'site / reader',
      'per link/min',
      'new case p50 / p99',
      'claim p50 / p99',
      'missing'
    ],
    rows.map(r => [
      r.mode,
      String(r.members),
      String(r.sites),
      String(r.links),
      `${r.startSeconds.toFixed(1)} s`,
      `${r.meshSeconds.toFixed(1)} s`,
      `${r.rssMbPerNode.toFixed(0)} MB`,
      `${r.cpuIdlePercentPerNode.toFixed(2)} %`,
      `${kb(mean(r.idleBytesPerMinute))} (${kb(Math.max(...r.idleBytesPerMinute))})`,
      `${kb(mean(r.idleBytesPerMinute.slice(0, r.sites)))} / ${kb(mean(r.idleBytesPerMinute.slice(r.sites)))}`,
      kb(r.idleBytesPerLinkMinute),
      ms(r.published),
      ms(r.claimed),
      String(r.missing)
    ])
  )
  for (const r of rows) if (r.note !== '') say(`  ${r.mode} ${r.members}: ${r.note}`)
  say()
  if (!compare) return
  say('against the goals of issue 14 and the figures before it')
  table(
    ['', 'goal', 'before', 'now'],
    [
      [
        'idle traffic per node per minute',
        'flat from 10 to 100 members',
        Object.entries(IDLE_BEFORE)
          .map(([m, v]) => `${v} (${m} members)`)
          .join(', '),
        rows.map(r => `${kb(mean(r.idleBytesPerMinute))} (${labelled(r)})`).join(', ')
      ],
      [
        'idle traffic per connected member',
        '-',
        '~8.5 KB/min',
        rows.map(r => `${kb(r.idleBytesPerLinkMinute)} (${labelled(r)})`).join(', ')
      ],
      [
        'a change reaches every member it concerns',
        'p99 < 2 s',
        '-',
        rows.map(r => `${percentile([...r.published, ...r.claimed], 99).toFixed(0)} ms (${labelled(r)})`).join(', ')
      ]
    ]
  )
  say()
  // Where this machine stops: memory (leaving a fifth to the system) and CPU while idle, per way of running nodes.
  const usable = (totalmem() * 0.8) / 2 ** 20
  const cores = cpus().length
  const memory = `${(totalmem() / 2 ** 30).toFixed(0)} GiB`
  say(`where the physical limit is here (${cores} cores, ${memory}; from the figures above):`)
  for (const r of rows) {
    const byMemory = Math.floor(usable / r.rssMbPerNode)
    const byCpu = Math.floor((cores * 100) / Math.max(r.cpuIdlePercentPerNode, 1e-3))
    say(
      `  ${r.mode === 'in-process' ? `in one process (${r.members})` : r.mode}: memory allows ~${byMemory} nodes ` +
        `(${r.rssMbPerNode.toFixed(0)} MB each), idle CPU ~${byCpu}; starting them one after another took ` +
        `${(r.startSeconds / r.members).toFixed(2)} s a node`
    )
  }
  say()
}
