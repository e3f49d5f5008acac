/**
 * The reading workflow end to end (see workflow.test.ts), the case of a site with no radiologist yet: a study
 * that becomes stable waits, and its case is published when the first reader connects.
 */
import { test } from 'uvu'
import { nodesOfTests } from '../helpers/nodes.ts'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import { storescu } from '../../scripts/lib/dcmtk.ts'
import { logOf, p2pAddr } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import { worklist } from './workflow-helpers.ts'

const nodes = nodesOfTests(test, 'Workflow', { extraArgs: ['--stable-after', '1s'] })
const { start } = nodes

test(
  'a study that becomes stable before any radiologist is ' + 'known waits, and its case is published when one connects',
  async () => {
    const lonely = await start(await nodes.member('Island Clinic', 'site'), { dicom: true })
    const dir = await tempDir()
    const study = await generateCt({
      out: dir,
      slices: 2,
      rows: 16,
      columns: 16,
      seed: 31,
      studyDescription: 'XR CHEST',
      bodyPart: 'CHEST'
    })
    assert.is((await storescu(lonely.dicomPort, 'RADMESH', ['+sd', '+r', dir])).code, 0)
    await waitFor(
      'the site to hold the case back',
      async () => (await logOf(lonely.home)).some(line => line['event'] === 'case-waiting-for-readers'),
      15_000
    )
    assert.equal(await worklist(lonely), [])
    const reader = await start(await nodes.member('Dr First Reader', 'radiologist'), { peers: [p2pAddr(lonely)] })
    const published = await waitFor(
      "the case on the first reader's worklist",
      async () => (await worklist(reader)).find(e => e.studyInstanceUid === study.studyInstanceUid),
      20_000
    )
    assert.is(published?.status, 'SCHEDULED')
    assert.is(
      (await reader.api('POST', `/api/worklist/${published?.caseId}/claim`)).status,
      200,
      'the reader it was published to can claim it'
    )
  }
)

test.run()
