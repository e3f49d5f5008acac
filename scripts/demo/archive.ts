/**
 * The site's archive seen from outside the worklist: a PACS's C-FIND against the site's DICOM port (DCMTK
 * findscu, skipped when DCMTK is not installed), and a de-identified copy of a study shared as a second opinion.
 */
import { radmeshOk } from '../lib/cli.ts'
import { runTool } from '../lib/dcmtk.ts'
import { AE_TITLE, type Running, say, until } from './common.ts'

/** findscu (Study Root, STUDY level) for one study at the site; prints what it found. */
export async function queryStudy(site: Running, studyUid: string): Promise<void> {
  const args = [
    '-v',
    '-S',
    '-aec',
    AE_TITLE,
    '-aet',
    'DEMO_PACS',
    '127.0.0.1',
    String(site.dicomPort),
    '-k',
    'QueryRetrieveLevel=STUDY',
    '-k',
    `StudyInstanceUID=${studyUid}`,
    '-k',
    'StudyDescription',
    '-k',
    'ModalitiesInStudy',
    '-k',
    'NumberOfStudyRelatedInstances'
  ]
  const result = await runTool('findscu', args).catch(() => undefined)
  if (result === undefined) {
    say('C-FIND step skipped: DCMTK findscu is not installed (apt install dcmtk)')
    return
  }
  const output = result.stdout + result.stderr
  if (result.code !== 0) throw new Error(`findscu failed (${result.code}): ${output.trim().split('\n').at(-1) ?? ''}`)
  const answers = output.split(/Find Response: \d+ \(Pending\)/).slice(1)
  const value = (tag: string): string =>
    new RegExp(`\\(${tag}\\) \\w\\w \\[([^\\]]*)\\]`).exec(answers[0] ?? '')?.[1]?.trim() ?? '?'
  say(
    `C-FIND: ${answers.length} stud${answers.length === 1 ? 'y' : 'ies'} (findscu as DEMO_PACS against ` +
      `${AE_TITLE}@127.0.0.1:${site.dicomPort}: ${value('0008,1030')}, ${value('0008,0061')}, ` +
      `${value('0020,1208')} instances; Query/Retrieve SCP, C-MOVE and C-GET too)`
  )
}

/**
 * `radmesh share --deidentify`: the reader fetches the copy, and the demo looks for the patient's name in it;
 * the copy is a second-opinion case on the reader's worklist alone; the reader signs a report on it, and the
 * site sees it come back to the original case (`originalCaseId`).
 */
export async function deidentifiedShare(
  site: Running,
  reader: Running,
  studyUid: string,
  patientName: string,
  description: string,
  originalCaseId: string
): Promise<void> {
  const printed = await radmeshOk([
    'share',
    '--home',
    site.home,
    studyUid,
    '--to',
    reader.peerId,
    '--deidentify',
    '--retain-patient-characteristics'
  ])
  const copyUid = /^de-identified copy of [0-9.]+: ([0-9.]+)$/m.exec(printed)?.[1]
  if (copyUid === undefined) throw new Error(`radmesh share --deidentify named no copy: ${printed.trim()}`)
  await radmeshOk(['fetch', '--home', reader.home, copyUid, '--timeout', '60'])
  const { status, body } = await reader.api<unknown[]>('GET', `/dicom-web/studies/${copyUid}/metadata`)
  if (status !== 200) throw new Error(`${reader.member.name} could not read the copy's metadata (${status})`)
  const text = JSON.stringify(body)
  const leaks = [patientName, studyUid].filter(s => text.includes(s))
  if (leaks.length > 0) throw new Error(`the de-identified copy still holds ${leaks.join(', ')}`)
  say(
    `de-identified copy ${copyUid} of ${description} shared with ${reader.member.name} for a second opinion: ` +
      `no patient name in it (${body.length} images, PS3.15 Basic Profile, patient characteristics kept, new UIDs)`
  )
  const copyCase = await until("the second-opinion case on the reader's worklist", async () => {
    const { body: list } = await reader.api<Array<{ caseId: string; studyInstanceUid: string; purpose: string }>>(
      'GET',
      '/api/worklist'
    )
    return list.find(entry => entry.studyInstanceUid === copyUid && entry.purpose === 'second-opinion')
  })
  const caseApi = `/api/cases/${copyCase.caseId}`
  await reader.api('POST', `/api/worklist/${copyCase.caseId}/claim`)
  await reader.api('PUT', `${caseApi}/report`, {
    sections: { impression: 'Second opinion: intact menisci and cruciate ligaments; agree no surgical lesion.' }
  })
  const signed = await reader.api<{ status: string }>('POST', `${caseApi}/report/sign`, { status: 'FINAL' })
  if (signed.status !== 200) throw new Error(`the second opinion could not be signed: ${JSON.stringify(signed.body)}`)
  type Opinion = { report: { signedByName: string; sections: { impression: string } } | null }
  const back = await until('the second opinion back on the original case', async () => {
    const { body: opinions } = await site.api<Opinion[]>('GET', `/api/cases/${originalCaseId}/second-opinions`)
    return opinions.find(opinion => opinion.report !== null)?.report ?? undefined
  })
  say(
    `${reader.member.name} signed the second opinion on the copy's own case (no one else was given it); it came ` +
      `back to ${site.member.name}'s original case ${originalCaseId}, beside its report: "${back.sections.impression}"`
  )
}
