import { test } from 'uvu'
import { type Member, member, signedCase } from './records-helpers.ts'
import * as assert from 'uvu/assert'
import { deriveCases, summariseTat } from '../../node/worklist/cases.ts'
import { signWorklistRecord } from '../../node/worklist/records.ts'
import { DEFAULT_ROUTING, route } from '../../node/worklist/routing.ts'
import { recordKey, type WorklistRecord } from '../../protocol/collab/records.ts'

const CASE = 'a'.repeat(24)
const STUDY = '1.2.826.0.1.3680043.8.498.7'

let site: Member, alice: Member, bob: Member, carol: Member
const at = (minute: number): string => new Date(Date.UTC(2026, 10, 28, 3, minute)).toISOString()

const caseRecord = async (readers: Member[], createdMinute = 0): Promise<WorklistRecord> =>
  await signedCase(site, {
    caseId: CASE,
    studyUid: STUDY,
    readers,
    createdAt: at(createdMinute),
    dueAt: at(createdMinute + 60)
  })
const claim = async (who: Member, seq: number, minute: number): Promise<WorklistRecord> =>
  await signWorklistRecord(who.key, { v: 1, kind: 'claim', caseId: CASE, seq, by: who.id, at: at(minute) })

function shuffled<T>(list: T[], seed: number): T[] {
  const out = [...list]
  let state = seed
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2 ** 31
    const j = state % (i + 1)
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

test.before(async () => {
  ;[site, alice, bob, carol] = await Promise.all([member(), member(), member(), member()])
})

test(
  'a published case is SCHEDULED; ' + 'a claim makes it IN PROGRESS; a release of the holding claim frees it',
  async () => {
    const published = await caseRecord([alice, bob])
    assert.is(deriveCases([published]).get(CASE)?.status, 'SCHEDULED')
    const claimed = await claim(alice, 1, 5)
    const held = deriveCases([published, claimed]).get(CASE)
    assert.is(held?.status, 'IN PROGRESS')
    assert.is(held?.claimedBy, alice.id)
    assert.is(held?.claimedAt, at(5))
    const release = await signWorklistRecord(alice.key, {
      v: 1,
      kind: 'release',
      caseId: CASE,
      claim: recordKey(claimed as { kind: string; signature: string }),
      seq: 2,
      by: alice.id,
      at: at(6)
    })
    const freed = deriveCases([published, claimed, release]).get(CASE)
    assert.is(freed?.status, 'SCHEDULED')
    assert.is(freed?.claimedBy, null)
    assert.is(freed?.seq, 2)
  }
)

test('concurrent claims: the earlier one wins on every node, whatever order the records arrive in', async () => {
  const records = [await caseRecord([alice, bob]), await claim(bob, 1, 7), await claim(alice, 1, 6)]
  for (let seed = 1; seed <= 20; seed++) {
    const state = deriveCases(shuffled(records, seed)).get(CASE)
    assert.is(state?.claimedBy, alice.id, `seed ${seed}`)
    assert.equal(state?.claimers, [alice.id, bob.id].sort())
  }
})

test('a claim made after seeing a release (higher seq) takes the case even with an earlier clock', async () => {
  const published = await caseRecord([alice, bob])
  const first = await claim(alice, 1, 10)
  const release = await signWorklistRecord(alice.key, {
    v: 1,
    kind: 'release',
    caseId: CASE,
    claim: recordKey(first as { kind: string; signature: string }),
    seq: 2,
    by: alice.id,
    at: at(11)
  })
  const second = await claim(bob, 3, 9)
  assert.is(deriveCases([second, release, published, first]).get(CASE)?.claimedBy, bob.id)
})

test(
  'claims by readers the case does not name, releases by others, ' + 'and cases not written by their site are ignored',
  async () => {
    const published = await caseRecord([alice])
    const outsider = await claim(carol, 1, 1)
    assert.is(deriveCases([published, outsider]).get(CASE)?.claimedBy, null)
    const claimed = await claim(alice, 2, 2)
    const foreignRelease = await signWorklistRecord(bob.key, {
      v: 1,
      kind: 'release',
      caseId: CASE,
      claim: recordKey(claimed as { kind: string; signature: string }),
      seq: 3,
      by: bob.id,
      at: at(3)
    })
    assert.is(deriveCases([published, claimed, foreignRelease]).get(CASE)?.claimedBy, alice.id)
    const fake = await signWorklistRecord(alice.key, {
      v: 1,
      kind: 'case',
      caseId: 'b'.repeat(24),
      studyUid: STUDY,
      site: site.id,
      siteName: 'x',
      priority: 'STAT',
      subspecialty: 'neuro',
      modalities: [],
      bodyPart: '',
      readers: [alice.id],
      createdAt: at(0),
      dueAt: at(1),
      by: alice.id,
      at: at(0)
    })
    assert.is(deriveCases([fake]).size, 0)
  }
)

test("a revoked reader's claim does not hold the case", async () => {
  const records = [await caseRecord([alice, bob]), await claim(alice, 1, 1)]
  assert.is(deriveCases(records, peer => peer === alice.id).get(CASE)?.claimedBy, null)
})

test('FINAL completes the case even when a cancel crossed it; TAT summary counts it', async () => {
  const published = await caseRecord([alice])
  const claimed = await claim(alice, 1, 5)
  const prelim = await signWorklistRecord(alice.key, {
    v: 1,
    kind: 'signed',
    caseId: CASE,
    status: 'PRELIMINARY',
    reportHash: 'c'.repeat(64),
    by: alice.id,
    at: at(20)
  })
  const final = await signWorklistRecord(alice.key, {
    v: 1,
    kind: 'signed',
    caseId: CASE,
    status: 'FINAL',
    reportHash: 'd'.repeat(64),
    by: alice.id,
    at: at(30)
  })
  const cancel = await signWorklistRecord(site.key, {
    v: 1,
    kind: 'cancel',
    caseId: CASE,
    reason: 'duplicate',
    by: site.id,
    at: at(29)
  })
  const state = deriveCases([published, claimed, prelim, final, cancel]).get(CASE)
  assert.is(state?.status, 'COMPLETED')
  assert.is(state?.preliminaryAt, at(20))
  assert.is(state?.finalAt, at(30))
  const [stat] = summariseTat([state as NonNullable<typeof state>], ['STAT'], Date.parse(at(90)))
  assert.equal(stat, {
    priority: 'STAT',
    cases: 1,
    completed: 1,
    open: 0,
    overdue: 0,
    withinDue: 1,
    medianMinutes: 30,
    p90Minutes: 30,
    medianClaimMinutes: 5
  })
  const canceled = deriveCases([published, cancel]).get(CASE)
  assert.is(canceled?.status, 'CANCELED')
  const [open] = summariseTat(
    [deriveCases([published]).get(CASE) as NonNullable<typeof state>],
    ['STAT'],
    Date.parse(at(90))
  )
  assert.is(open?.overdue, 1)
})

test(
  'routing: a stroke CT head goes to neuro as STAT; a knee MR to msk as ROUTINE; ' + 'no match is general ROUTINE',
  () => {
    assert.equal(route({ modalities: ['CT'], bodyPart: 'HEAD', description: 'CT HEAD STROKE PROTOCOL' }), {
      subspecialty: 'neuro',
      priority: 'STAT'
    })
    assert.equal(route({ modalities: ['MR'], bodyPart: 'KNEE', description: 'MRI KNEE' }), {
      subspecialty: 'msk',
      priority: 'ROUTINE'
    })
    assert.equal(route({ modalities: ['US'], bodyPart: '', description: 'Ultrasound' }), {
      subspecialty: 'general',
      priority: 'ROUTINE'
    })
    assert.equal(route({ modalities: ['CT'], bodyPart: 'CHEST', description: 'CTA chest PE' }), {
      subspecialty: 'chest',
      priority: 'STAT'
    })
  }
)

test('routing takes the text a sender chose in bounded time, even against a site pattern that backtracks', () => {
  // A pattern that is cubic in the length of the text it fails on.
  const backtracking = { description: '\\s*\\s*=', priority: 'STAT' as const }
  const config = { ...DEFAULT_ROUTING, rules: [backtracking, ...DEFAULT_ROUTING.rules] }
  const started = performance.now()
  const facts = { modalities: ['CT'], bodyPart: 'x'.repeat(1_000_000), description: ' '.repeat(100_000) }
  const routed = route(facts, config)
  const elapsed = performance.now() - started
  assert.equal(routed, { subspecialty: 'general', priority: 'ROUTINE' })
  assert.ok(elapsed < 100, `routing took ${elapsed.toFixed(1)} ms`)
  const head = route({ modalities: ['CT'], bodyPart: 'HEAD', description: 'CT HEAD =' }, config)
  assert.equal(head, { subspecialty: 'neuro', priority: 'STAT' })
})

test.run()
