/**
 * The reading workflow end to end, in separate processes over real libp2p, with DCMTK as the modality:
 * storescu -> site -> a case on two readers' worklists -> one claims (the other gets 409) -> the study is
 * fetched -> the report is written, a consultant invited, both edit the same section at once -> signed
 * FINAL -> the site holds a DICOM SR of it (dciodvfy passes) and serves it as FHIR; TAT fields are filled.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'uvu'
import { nodesOfTests } from '../helpers/nodes.ts'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import {
  connected,
  knowsRadiologists,
  logOf,
  p2pAddr,
  peersOf,
  type StartedNode
} from '../../scripts/lib/node-process.ts'
import { ROOT } from '../../scripts/lib/cli.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import {
  assertBadRequestsRefused,
  assertFhirReport,
  type Entry,
  type Report,
  report,
  srAtSite,
  worklist
} from './workflow-helpers.ts'

const nodes = nodesOfTests(test, 'Workflow', { extraArgs: ['--stable-after', '1s'] })
const { start } = nodes

/** the first test's site and holder, reused by the next tests */
let site: StartedNode
let alice: StartedNode

test(
  'storescu -> case on two worklists -> claim (409 for the other) -> ' +
    'fetch -> co-written report -> FINAL -> SR and FHIR at the site',
  async () => {
    site = await start(await nodes.member('County Hospital', 'site'), { dicom: true })
    alice = await start(await nodes.member('Dr Alice Neuro', 'radiologist', [], ['--subspecialty', 'neuro']), {
      peers: [p2pAddr(site)]
    })
    const bob = await start(await nodes.member('Dr Bob Neuro', 'radiologist', [], ['--subspecialty', 'neuro']), {
      peers: [p2pAddr(site), p2pAddr(alice)]
    })
    // Carol's periodic resync is an hour: what she gets of the report, she gets because she was invited.
    const carol = await start(await nodes.member('Dr Carol Consult', 'radiologist', [], ['--subspecialty', 'msk']), {
      peers: [p2pAddr(site), p2pAddr(alice)],
      extraArgs: ['--resync', '1h']
    })
    await connected(site, alice)
    await connected(site, bob)
    await connected(alice, carol)
    // Every member's certificate reaches the site through the worklist before the study is stable.
    await knowsRadiologists(site, 3, 15_000)

    // Bob's only shift is over: he is off duty, so he does not prefetch STAT studies.
    const offDuty = await bob.api<{ onDuty: boolean }>('PUT', '/api/duty', {
      shifts: [{ start: '2026-01-01T00:00:00Z', end: '2026-01-01T08:00:00Z' }]
    })
    assert.is(offDuty.status, 200, JSON.stringify(offDuty.body))
    assert.is(offDuty.body.onDuty, false)
    await waitFor(
      'Alice to see Bob off duty',
      async () =>
        (await alice.api<Array<{ peerId: string; onDuty: boolean }>>('GET', '/api/duty')).body.some(
          r => r.peerId === bob.peerId && !r.onDuty
        ),
      10_000
    )

    const dir = await tempDir()
    const study = await generateCt({
      out: dir,
      slices: 20,
      series: 1,
      rows: 64,
      columns: 64,
      seed: 5,
      studyDescription: 'CT HEAD STROKE PROTOCOL',
      bodyPart: 'HEAD'
    })
    const sent = await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])
    assert.is(sent.code, 0, sent.stderr)

    const [onAlice] = await waitFor(
      "the case on Alice's worklist",
      async () => {
        const list = await worklist(alice)
        return list.length === 1 ? list : undefined
      },
      20_000
    )
    const entry = onAlice as Entry
    assert.is(entry.studyInstanceUid, study.studyInstanceUid)
    assert.is(entry.priority, 'STAT')
    assert.is(entry.subspecialty, 'neuro')
    assert.is(entry.status, 'SCHEDULED')
    assert.is(Date.parse(entry.dueAt) - Date.parse(entry.createdAt), 60 * 60_000, 'STAT is due in one hour')
    await waitFor("the case on Bob's worklist", async () => (await worklist(bob)).length === 1, 10_000)
    assert.is((await worklist(carol)).length, 0, 'the msk reader is not routed a neuro case')

    // STAT: Alice, on duty, has the study before she claims it; Bob, off duty, has not fetched it.
    await waitFor(
      'the STAT study prefetched to Alice',
      async () =>
        (await alice.api<{ complete: boolean }>('GET', `/api/studies/${study.studyInstanceUid}/availability`)).body
          .complete,
      30_000
    )
    const onBob = await bob.api<{ instancesLocal?: number }>(
      'GET',
      `/api/studies/${study.studyInstanceUid}/availability`
    )
    assert.ok(
      onBob.status === 404 || onBob.body.instancesLocal === 0,
      `Bob is off duty and fetched nothing: ${JSON.stringify(onBob.body)}`
    )

    const claimed = await alice.api<Entry>('POST', `/api/worklist/${entry.caseId}/claim`)
    assert.is(claimed.status, 200, JSON.stringify(claimed.body))
    assert.is(claimed.body.status, 'IN PROGRESS')
    assert.is(claimed.body.claimedBy, alice.peerId)
    await waitFor("Bob to see Alice's claim", async () => (await worklist(bob))[0]?.claimedBy === alice.peerId, 10_000)
    const refused = await bob.api<{ error: { code: string } }>('POST', `/api/worklist/${entry.caseId}/claim`)
    assert.is(refused.status, 409)
    assert.is(refused.body.error.code, 'RADMESH_CASE_TAKEN')

    const written = await alice.api<Report>('PUT', `/api/cases/${entry.caseId}/report`, {
      sections: { indication: 'Sudden left weakness.', technique: 'Non-contrast CT head.', findings: 'No haemorrhage.' }
    })
    assert.is(written.status, 200, JSON.stringify(written.body))
    await assertBadRequestsRefused(alice, entry.caseId)
    assert.is((await alice.api('GET', '/api/health')).status, 200)
    const invited = await alice.api<Entry>('POST', `/api/cases/${entry.caseId}/consult`, { peerId: carol.peerId })
    assert.is(invited.status, 200, JSON.stringify(invited.body))
    assert.equal(invited.body.consultants, [carol.peerId])
    // The findings were written before she was invited: the updates relayed from now on do not carry them.
    const invitedAt = Date.now()
    await waitFor(
      'Carol to have the report written before her invitation',
      async () =>
        (await carol.api<Report>('GET', `/api/cases/${entry.caseId}/report`)).body.sections?.findings ===
        'No haemorrhage.',
      5_000,
      25
    )
    const took = Date.now() - invitedAt
    process.stdout.write(`\n    [consult] Carol had the report ${took} ms after the invitation\n`)
    assert.ok(took < 2_000, `Carol had the report ${took} ms after the invitation`)

    // Both write the findings at once, each from the text both read: both edits survive on both nodes,
    // whether they cross on the wire (Yjs merges them) or one lands before the other (the base keeps it).
    const base = { findings: 'No haemorrhage.' }
    const [a, c] = await Promise.all([
      alice.api('PUT', `/api/cases/${entry.caseId}/report`, {
        sections: { findings: 'No haemorrhage. Hyperdense right MCA.' },
        base
      }),
      carol.api('PUT', `/api/cases/${entry.caseId}/report`, {
        sections: { findings: 'Early ischaemic change in the right insula. No haemorrhage.' },
        base
      })
    ])
    assert.is(a.status, 200)
    assert.is(c.status, 200)
    const merged = await waitFor(
      'both readers to show the same findings',
      async () => {
        const [x, y] = await Promise.all([report(alice, entry.caseId), report(carol, entry.caseId)])
        return x.sections['findings'] === y.sections['findings'] ? x.sections['findings'] : undefined
      },
      10_000
    )
    assert.ok(merged?.includes('Hyperdense right MCA'), merged)
    assert.ok(merged?.includes('Early ischaemic change in the right insula'), merged)
    // An edit from that old text that changes where the others wrote is refused, and changes nothing.
    const stale = await carol.api<{ error: { code: string; message: string } }>(
      'PUT',
      `/api/cases/${entry.caseId}/report`,
      { sections: { findings: 'No acute haemorrhage.' }, base }
    )
    assert.equal([stale.status, stale.body.error?.code], [409, 'RADMESH_REPORT_CHANGED'], JSON.stringify(stale.body))
    assert.match(stale.body.error.message, merged ?? '')
    assert.is((await report(carol, entry.caseId)).sections['findings'], merged)
    const orphanBase = await carol.api<{ error: { code: string } }>('PUT', `/api/cases/${entry.caseId}/report`, {
      sections: { impression: 'x' },
      base
    })
    assert.equal(
      [orphanBase.status, orphanBase.body.error?.code],
      [400, 'RADMESH_BAD_REQUEST'],
      'a base for a section the edit does not write'
    )

    const carolSigns = await carol.api<{ error: { code: string } }>('POST', `/api/cases/${entry.caseId}/report/sign`, {
      status: 'FINAL'
    })
    assert.is(carolSigns.status, 403, 'a consultant does not sign FINAL')
    const siteSigns = await site.api<{ error: { code: string } }>('POST', `/api/cases/${entry.caseId}/report/sign`, {
      status: 'PRELIMINARY'
    })
    assert.is(siteSigns.status, 403, 'a site never signs')

    await alice.api('PUT', `/api/cases/${entry.caseId}/report`, {
      sections: { impression: 'Acute right MCA infarct. No haemorrhage.' }
    })
    const prelim = await alice.api<Report>('POST', `/api/cases/${entry.caseId}/report/sign`, { status: 'PRELIMINARY' })
    assert.is(prelim.body.status, 'PRELIMINARY')
    const final = await alice.api<Report>('POST', `/api/cases/${entry.caseId}/report/sign`, { status: 'FINAL' })
    assert.is(final.status, 200, JSON.stringify(final.body))
    assert.is(final.body.status, 'FINAL')
    assert.ok(final.body.signatures.every(s => s.verified))

    const afterFinal = await carol.api<{ error: { code: string } }>('PUT', `/api/cases/${entry.caseId}/report`, {
      sections: { findings: 'changed after final' }
    })
    await waitFor(
      'Carol to see the FINAL report',
      async () => (await report(carol, entry.caseId)).status === 'FINAL',
      10_000
    )
    const late = await carol.api<{ error: { code: string } }>('PUT', `/api/cases/${entry.caseId}/report`, {
      sections: { findings: 'changed after final' }
    })
    assert.is(late.status, 409, `a FINAL report cannot change (first try answered ${afterFinal.status})`)
    assert.is(late.body.error.code, 'RADMESH_REPORT_FINAL')

    // Turnaround fields on every node.
    const done = await waitFor(
      'the site to see the case COMPLETED',
      async () => (await worklist(site)).find(e => e.status === 'COMPLETED'),
      10_000
    )
    assert.ok(done?.claimedAt !== null && done?.preliminaryAt !== null && done?.finalAt !== null, JSON.stringify(done))
    const tat = await site.api<{
      byPriority: Array<{ priority: string; completed: number; medianMinutes: number | null }>
    }>('GET', '/api/tat')
    const stat = tat.body.byPriority.find(row => row.priority === 'STAT')
    assert.is(stat?.completed, 1)
    assert.ok(stat?.medianMinutes !== null && (stat?.medianMinutes ?? -1) >= 0)

    // The site holds the report as a DICOM SR in its archive, which dciodvfy accepts, and as FHIR.
    const seriesUid = await srAtSite(site, study.studyInstanceUid)
    await assertFhirReport(site, entry.caseId, study.studyInstanceUid)

    // An addendum: AMENDED on the readers, a second SR (naming the first) and an amended FHIR report at the site.
    const amended = await alice.api<Report>('POST', `/api/cases/${entry.caseId}/report/addendum`, {
      text: 'CTA: right M1 occlusion.'
    })
    assert.is(amended.status, 200, JSON.stringify(amended.body))
    assert.is(amended.body.status, 'AMENDED')
    assert.equal(
      amended.body.addenda.map(a => a.text),
      ['CTA: right M1 occlusion.']
    )
    assert.equal(
      amended.body.sections['impression'],
      'Acute right MCA infarct. No haemorrhage.',
      'the FINAL sections do not change'
    )
    await waitFor(
      "the second SR in the site's archive",
      async () => {
        const list = (await (
          await site.fetch(`/dicom-web/studies/${study.studyInstanceUid}/series/${seriesUid}/instances`, {
            headers: { accept: 'application/dicom+json' }
          })
        ).json()) as unknown[]
        return list.length === 2
      },
      15_000
    )
    const fhirAmended = await site.api<{ status: string }>('GET', `/api/cases/${entry.caseId}/report/fhir`)
    assert.is(fhirAmended.body.status, 'amended')
  }
)

test(
  'a member that alters a FINAL report, signs or claims as ' +
    'someone else, or sends garbage is refused; the node carries on',
  async () => {
    const dir = await tempDir()
    const study = await generateCt({
      out: dir,
      slices: 3,
      rows: 32,
      columns: 32,
      seed: 8,
      studyDescription: 'CT HEAD',
      bodyPart: 'HEAD'
    })
    assert.is((await storescu(site.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
    const entry = (await waitFor(
      "the second case on Alice's worklist",
      async () => (await worklist(alice)).find(e => e.studyInstanceUid === study.studyInstanceUid),
      20_000
    )) as Entry
    assert.is((await alice.api('POST', `/api/worklist/${entry.caseId}/claim`)).status, 200)

    const malloryHome = await nodes.member('Dr Mallory', 'radiologist')
    const mallory = spawn(
      process.execPath,
      [join(ROOT, 'test/helpers/bad-editor.ts'), malloryHome, p2pAddr(alice), entry.caseId, alice.peerId],
      { stdio: ['pipe', 'pipe', 'inherit'] }
    )
    const lines = createInterface({ input: mallory.stdout })[Symbol.asyncIterator]()
    try {
      const { peerId: malloryId } = JSON.parse((await lines.next()).value as string) as { peerId: string }
      await waitFor(
        'Alice to know Mallory',
        async () => (await peersOf(alice)).some(p => p.peerId === malloryId),
        10_000
      )
      assert.is((await alice.api('POST', `/api/cases/${entry.caseId}/consult`, { peerId: malloryId })).status, 200)
      await alice.api('PUT', `/api/cases/${entry.caseId}/report`, {
        sections: { findings: 'Normal.', impression: 'No acute abnormality.' }
      })
      const signed = await alice.api<Report>('POST', `/api/cases/${entry.caseId}/report/sign`, { status: 'FINAL' })
      assert.is(signed.body.status, 'FINAL')

      mallory.stdin.write('attack\n')
      const { sent } = JSON.parse((await lines.next()).value as string) as { sent: string[] }
      assert.is(sent.length, 5, JSON.stringify(sent))
      const refusals = await waitFor(
        'Alice to refuse the four updates',
        async () => {
          const refused = (await logOf(alice.home)).filter(
            line => line['event'] === 'sync-update-refused' && line['peer'] === malloryId
          )
          return refused.length >= 4 ? refused : undefined
        },
        10_000
      )
      const reasons = refusals?.map(line => String(line['reason'])) ?? []
      assert.ok(
        reasons.some(r => /FINAL report/.test(r)),
        reasons.join('\n')
      )
      assert.ok(
        reasons.some(r => /not signed by/.test(r) && r.startsWith('the report-signature')),
        reasons.join('\n')
      )
      assert.ok(
        reasons.some(r => /not signed by/.test(r) && r.startsWith('the claim')),
        reasons.join('\n')
      )
      assert.ok(
        reasons.some(r => /does not decode/.test(r)),
        reasons.join('\n')
      )
      await waitFor(
        'Alice to reset the oversized stream',
        async () =>
          (await logOf(alice.home)).some(line => line['event'] === 'sync-stream-refused' && line['peer'] === malloryId),
        10_000
      )

      const after = await report(alice, entry.caseId)
      assert.is(after.status, 'FINAL')
      assert.is(after.sections['findings'], 'Normal.')
      assert.is(after.sections['impression'], 'No acute abnormality.')
      assert.is(after.signatures.length, 1)
      assert.ok(!JSON.stringify(after).includes('TAMPERED') && !JSON.stringify(after).includes('FORGED'))
      assert.is((await worklist(alice)).find(e => e.caseId === entry.caseId)?.claimedBy, alice.peerId)
      // Still responsive, still in sync with the site.
      assert.is((await alice.api('GET', '/api/health')).status, 200)
      await waitFor(
        'the site to see the second case COMPLETED',
        async () => (await worklist(site)).find(e => e.caseId === entry.caseId)?.status === 'COMPLETED',
        10_000
      )
    } finally {
      mallory.kill('SIGKILL')
    }
  }
)

test.run()
