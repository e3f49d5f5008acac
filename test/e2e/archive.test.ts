/**
 * The archive end to end: a real node process, fed by DCMTK storescu, `radmesh import` and STOW-RS,
 * read back through WADO-RS and QIDO-RS, audited, and killed with SIGKILL mid-association.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseMultipartRelated } from '../../protocol/dicomweb/multipart.ts'
import { sha256Hex } from '../../node/archive/chunks.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { datasetStart, filesUnder } from '../helpers/dicom.ts'
import { runTool, storescu } from '../../scripts/lib/dcmtk.ts'
import { corpusFiles, PYDICOM_CORPUS } from '../../scripts/lib/pydicom-corpus.ts'
import { radmesh } from '../../scripts/lib/cli.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

let consortium: ScratchConsortium
let node: StartedNode
const started: StartedNode[] = []

async function start(home: string, extra: Parameters<typeof startNode>[1] = {}): Promise<StartedNode> {
  const n = await startNode(home, { dicom: true, ...extra })
  started.push(n)
  return n
}

/** WADO-RS: every part of a multipart/related answer. */
async function wado(n: StartedNode, path: string): Promise<Uint8Array[]> {
  const response = await n.fetch(`/dicom-web${path}`, {
    headers: { accept: 'multipart/related; type="application/dicom"' }
  })
  assert.is(response.status, 200, `GET ${path}`)
  const body = new Uint8Array(await response.arrayBuffer())
  return parseMultipartRelated(body, response.headers.get('content-type') ?? '').map(part => part.body)
}

async function qido(n: StartedNode, path: string): Promise<Array<Record<string, { Value?: unknown[] }>>> {
  const response = await n.fetch(`/dicom-web${path}`, { headers: { accept: 'application/dicom+json' } })
  assert.is(response.status, 200, `GET ${path}`)
  return (await response.json()) as Array<Record<string, { Value?: unknown[] }>>
}

const datasetOf = (file: Uint8Array): Uint8Array => file.subarray(datasetStart(file))

test.before(async () => {
  consortium = await createScratchConsortium()
  node = await start(await consortium.member('Archive Site', 'site'))
})

test.after(async () => {
  await Promise.all(
    started.map(async n => {
      await n.kill()
    })
  )
})

test(
  'storescu sends a multi-series study; WADO-RS returns ' + 'every data set byte-identical, and dcmdump reads it',
  async () => {
    const dir = await tempDir()
    const study = await generateCt({ out: dir, slices: 4, series: 2, rows: 64, columns: 64, seed: 7 })
    const sent = await storescu(node.dicomPort, 'RADMESH', ['+sd', '+r', dir])
    assert.is(sent.code, 0, sent.stdout + sent.stderr)

    const studies = await qido(node, `/studies?StudyInstanceUID=${study.studyInstanceUid}`)
    assert.is(studies.length, 1)
    assert.equal(studies[0]?.['00201208']?.Value, [8])
    assert.equal(studies[0]?.['00201206']?.Value, [2])
    const series = await qido(node, `/studies/${study.studyInstanceUid}/series`)
    assert.is(series.length, 2)

    const returned = await wado(node, `/studies/${study.studyInstanceUid}`)
    assert.is(returned.length, 8)
    const byDataset = new Set(returned.map(file => sha256Hex(datasetOf(file))))
    for (const file of study.files)
      assert.ok(byDataset.has(sha256Hex(datasetOf(await fs.readFile(file)))), `${file} did not come back intact`)

    const first = returned[0] as Uint8Array
    const path = join(dir, 'returned.dcm')
    await fs.writeFile(path, first)
    const dump = await runTool('dcmdump', [path])
    assert.is(dump.code, 0, dump.stderr)
    assert.match(dump.stdout, /\(0020,000d\) UI \[/)
    assert.match(dump.stdout, /\(0002,0013\) SH \[RADMESH_0_1\]/)
  }
)

test(
  'radmesh import stores the pydicom corpus byte-identical or ' +
    'refuses each bad file with a reason, and the node stays up',
  async () => {
    const result = await radmesh(['import', '--home', node.home, PYDICOM_CORPUS])
    assert.is(result.code, 1, 'import exits 1 when some files were refused')
    const refusedLines = result.stderr.split('\n').filter(line => line.startsWith('refused '))
    assert.ok(refusedLines.length >= 10, result.stderr)
    assert.ok(
      refusedLines.some(line => line.includes('MR_truncated.dcm') && /truncated/.test(line)),
      result.stderr
    )
    assert.ok(
      refusedLines.some(line => line.includes('no_meta.dcm') && /not a DICOM Part 10 file/.test(line)),
      result.stderr
    )
    assert.match(result.stdout, /imported \d+ file\(s\): \d+ stored/)

    // Every file the node says it stored comes back whole, byte for byte (the first of any shared UID).
    const refused = new Set(refusedLines.map(line => line.slice('refused '.length, line.indexOf(': '))))
    const seenUids = new Set<string>()
    let checked = 0
    for (const file of await corpusFiles()) {
      if (refused.has(file)) continue
      const bytes = await fs.readFile(file)
      const sop = /\(0008,0018\) UI \[([0-9.]+)\]/.exec(
        (await runTool('dcmdump', ['+P', '0008,0018', file])).stdout
      )?.[1]
      if (sop === undefined || seenUids.has(sop)) continue
      seenUids.add(sop)
      const found = await node.fetch(`/api/instances/${sop}`)
      if (found.status !== 200) continue
      const { studyInstanceUid, seriesInstanceUid } = (await found.json()) as {
        studyInstanceUid: string
        seriesInstanceUid: string
      }
      const [back] = await wado(node, `/studies/${studyInstanceUid}/series/${seriesInstanceUid}/instances/${sop}`)
      if (sha256Hex(back as Uint8Array) === sha256Hex(bytes)) checked++
    }
    assert.ok(checked >= 20, `only ${checked} corpus files came back byte-identical`)
    assert.is((await node.api<{ ok: boolean }>('GET', '/api/health')).body.ok, true)
  }
)

/** storescu's flag that proposes a file's own transfer syntax (it sends no compressed file otherwise). */
const PROPOSE: Record<string, string> = {
  '1.2.840.10008.1.2': '-xi',
  '1.2.840.10008.1.2.1': '-xe',
  '1.2.840.10008.1.2.2': '-xb',
  '1.2.840.10008.1.2.1.99': '-xd',
  '1.2.840.10008.1.2.5': '-xr',
  '1.2.840.10008.1.2.4.90': '-xv',
  '1.2.840.10008.1.2.4.91': '-xw',
  '1.2.840.10008.1.2.4.50': '-xy',
  '1.2.840.10008.1.2.4.51': '-xx',
  '1.2.840.10008.1.2.4.70': '-xs',
  '1.2.840.10008.1.2.4.80': '-xt',
  '1.2.840.10008.1.2.4.81': '-xu'
}

test(
  'the pydicom corpus sent by C-STORE: every file storescu can ' +
    'send is stored or refused with a status, associations carry on',
  async () => {
    const groups = new Map<string, string[]>()
    for (const file of await corpusFiles()) {
      const syntax =
        /\(0002,0010\) UI \[([0-9.]+)\]/.exec(
          (await runTool('dcmdump', ['-M', '-Un', '+P', '0002,0010', file])).stdout
        )?.[1] ?? 'unknown'
      groups.set(syntax, [...(groups.get(syntax) ?? []), file])
    }
    let successes = 0
    let failures = 0
    const perSyntax: string[] = []
    for (const [syntax, files] of groups) {
      // -nh: carry on past a refusal; -R: propose only the files' SOP classes, in the files' own syntax.
      const result = await storescu(node.dicomPort, 'RADMESH', ['-nh', '-R', PROPOSE[syntax] ?? '-xe', ...files])
      const output = result.stdout + result.stderr
      assert.not.match(output, /Association Aborted|Peer aborted|Association Request Failed/i, syntax)
      successes += (output.match(/Received Store Response \(Success\)/g) ?? []).length
      failures += (output.match(/Received Store Response \((?!Success)[^)]*\)/g) ?? []).length
      perSyntax.push(
        `${syntax}: ${files.length} files, ${(output.match(/Received Store Response/g) ?? []).length} answered; ${output
          .split('\n')
          .filter(l => l.startsWith('E:'))
          .join(' | ')}`
      )
    }
    assert.ok(successes >= 50, `${successes} stored, ${failures} refused\n${perSyntax.join('\n')}`)
    assert.is((await node.api<{ ok: boolean }>('GET', '/api/health')).body.ok, true)
  }
)

test(
  'STOW-RS stores the good parts of a request, reports the ' +
    'bad one with its reason, and returns stored files whole',
  async () => {
    const good = await fs.readFile(join(PYDICOM_CORPUS, 'liver_1frame.dcm'))
    const bad = await fs.readFile(join(PYDICOM_CORPUS, 'rtplan_truncated.dcm'))
    const dir = await tempDir()
    const generated = await generateCt({ out: dir, slices: 1, rows: 32, columns: 32, seed: 99 })
    const other = await fs.readFile(generated.files[0] as string)
    const boundary = 'stow-test-boundary'
    const body = Buffer.concat(
      [good, bad, other]
        .flatMap(part => [
          Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
          part,
          Buffer.from('\r\n')
        ])
        .concat([Buffer.from(`--${boundary}--\r\n`)])
    )
    const response = await node.fetch('/dicom-web/studies', {
      method: 'POST',
      headers: {
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
        accept: 'application/dicom+json'
      },
      body
    })
    assert.is(response.status, 202)
    const answer = (await response.json()) as Record<string, { Value: Array<Record<string, { Value: unknown[] }>> }>
    assert.is(answer['00081199']?.Value.length, 2)
    assert.is(answer['00081198']?.Value.length, 1)
    assert.match(String(answer['00081198']?.Value[0]?.['00000902']?.Value[0]), /truncated/)
    const [back] = await wado(node, `/studies/${generated.studyInstanceUid}`)
    assert.is(sha256Hex(back as Uint8Array), sha256Hex(other))
  }
)

test('a canary patient name sent by C-STORE appears in no file under HOME', async () => {
  const dir = await tempDir()
  const canary = 'ZZCANARY^WOMBAT4417'
  await generateCt({ out: dir, slices: 2, rows: 32, columns: 32, patientName: canary, seed: 4417 })
  assert.is((await storescu(node.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
  await waitFor('the instances', async () => (await qido(node, '/studies?PatientName=ZZCANARY*')).length === 1)
  const needle = Buffer.from(canary, 'latin1')
  for await (const path of filesUnder(node.home)) {
    const content = await fs.readFile(path)
    assert.is(content.indexOf(needle), -1, `the canary is readable in ${path}`)
  }
})

test(
  'kill -9 during a 400-instance C-STORE loses no ' + 'instance answered Success and shows none half-written',
  async () => {
    const home = await consortium.member('Crash Site', 'site')
    let victim = await start(home)
    const dir = await tempDir()
    const study = await generateCt({ out: dir, slices: 400, rows: 96, columns: 96, seed: 400 })
    let successes = 0
    let killed = false
    const sending = storescu(victim.dicomPort, 'RADMESH', study.files, [], text => {
      successes += (text.match(/Received Store Response \(Success\)/g) ?? []).length
      if (!killed && successes >= 150) {
        killed = true
        victim.process.kill('SIGKILL')
      }
    })
    await sending
    assert.ok(killed, `storescu finished before the kill (${successes} successes)`)
    await waitFor('the node to die', () => victim.process.exitCode !== null || victim.process.signalCode !== null)
    victim = await start(home)
    const listed = await qido(victim, `/studies/${study.studyInstanceUid}/series`)
    const count = Number(listed[0]?.['00201209']?.Value?.[0] ?? 0)
    assert.ok(count >= successes, `${count} instances listed, ${successes} were answered Success`)
    const files = await wado(victim, `/studies/${study.studyInstanceUid}`)
    assert.is(files.length, count, 'every listed instance is readable')
    const sent = new Set(
      await Promise.all(study.files.map(async file => sha256Hex(datasetOf(await fs.readFile(file)))))
    )
    for (const file of files)
      assert.ok(sent.has(sha256Hex(datasetOf(file))), 'a returned instance is not one that was sent')
    // The first `successes` files, in send order, were answered Success: each must be there.
    const have = new Set(files.map(file => sha256Hex(datasetOf(file))))
    for (const file of study.files.slice(0, successes))
      assert.ok(have.has(sha256Hex(datasetOf(await fs.readFile(file)))), `${file} was acknowledged and lost`)
  }
)

test(
  'kill -9 while three associations send at once: every ' +
    'instance answered Success on any of them is there and intact',
  async () => {
    // Stores from several associations share the pack's writes: staged chunks and commit entries, grouped
    // and in flight together. (A kill leaves the writes the kernel has taken; the order they reach the disk in
    // matters for a power loss, which test/archive/staging.test.ts and pack-log.test.ts make.)
    const home = await consortium.member('Busy Site', 'site')
    let victim = await start(home)
    const studies = await Promise.all(
      [1, 2, 3].map(
        async seed => await generateCt({ out: await tempDir(), slices: 150, rows: 96, columns: 96, seed: 500 + seed })
      )
    )
    const successes = [0, 0, 0]
    let killed = false
    await Promise.all(
      studies.map(
        async (study, i) =>
          await storescu(victim.dicomPort, 'RADMESH', study.files, [], text => {
            successes[i] = (successes[i] as number) + (text.match(/Received Store Response \(Success\)/g) ?? []).length
            if (!killed && successes.reduce((a, b) => a + b) >= 200) {
              killed = true
              victim.process.kill('SIGKILL')
            }
          })
      )
    )
    assert.ok(killed, `the three associations finished before the kill (${successes.join(', ')} successes)`)
    await waitFor('the node to die', () => victim.process.exitCode !== null || victim.process.signalCode !== null)
    victim = await start(home)
    for (const [i, study] of studies.entries()) {
      const files =
        (await qido(victim, `/studies?StudyInstanceUID=${study.studyInstanceUid}`)).length === 0
          ? []
          : await wado(victim, `/studies/${study.studyInstanceUid}`)
      const have = new Set(files.map(file => sha256Hex(datasetOf(file))))
      const sent = await Promise.all(study.files.map(async file => sha256Hex(datasetOf(await fs.readFile(file)))))
      for (const hash of have)
        assert.ok(sent.includes(hash), `study ${i + 1}: a returned instance is not one that was sent`)
      sent.slice(0, successes[i]).forEach((hash, n) => {
        assert.ok(have.has(hash), `study ${i + 1}: instance ${n + 1} was acknowledged and lost`)
      })
    }
  }
)

test('the audit trail verifies, and a hand-edited record is caught', async () => {
  const ok = await radmesh(['audit', '--home', node.home, '--verify'])
  assert.is(ok.code, 0, ok.stderr)
  assert.match(ok.stdout, /audit chain verified: \d+ record\(s\), unbroken/)
  assert.match(ok.stdout, / 110104 C outcome=0 ae:TESTSCU /)
  assert.match(ok.stdout, / 110112 E /)
  const path = join(node.home, 'audit.log')
  const text = await fs.readFile(path, 'utf8')
  await fs.writeFile(path, text.replace('"outcome":0', '"outcome":4'))
  const broken = await radmesh(['audit', '--home', node.home, '--verify'])
  assert.is(broken.code, 3)
  assert.match(
    broken.stderr,
    /^radmesh: audit chain BROKEN at record \d+: record \d+ was changed after it was written\n$/
  )
})

test.run()
