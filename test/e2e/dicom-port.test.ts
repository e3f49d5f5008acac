/**
 * The DICOM port's limits on a real node process (`radmesh start --dicom`), from raw sockets and from DCMTK:
 * the association cap, the PDU timeout, the calling AE allow-list (flags and HOME/dicom-peers.json), and the
 * memory a half-sent data set holds, read from /proc/PID/status.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateCt } from '../../scripts/generate-ct.ts'
import {
  associateRq,
  commandPdu,
  dataPdu,
  EXPLICIT_LE,
  echoRq,
  RawAssociation,
  storeRq,
  VERIFICATION
} from '../../scripts/fuzz/scu.ts'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { runTool, storescu } from '../../scripts/lib/dcmtk.ts'
import { logOf, type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { radmesh } from '../../scripts/lib/cli.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'

const CT = '1.2.840.10008.5.1.4.1.1.2'
const CONTEXTS = [
  { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT_LE] },
  { id: 3, abstractSyntax: CT, transferSyntaxes: [EXPLICIT_LE] }
]

let consortium: ScratchConsortium
const started: StartedNode[] = []

async function start(extraArgs: string[], prepare?: (home: string) => Promise<void>): Promise<StartedNode> {
  const home = await consortium.member(`Port ${started.length + 1}`, 'site')
  await prepare?.(home)
  const node = await startNode(home, { dicom: true, extraArgs })
  started.push(node)
  return node
}

async function associate(node: StartedNode, calling: string): Promise<RawAssociation> {
  const scu = await RawAssociation.connect(node.dicomPort)
  const answer = await scu.associate(associateRq('RADMESH', calling, CONTEXTS))
  assert.is(answer.type, 'associate-ac', `${calling}: ${JSON.stringify(answer)}`)
  return scu
}

const echoscu = async (node: StartedNode, calling: string): Promise<{ code: number | null; output: string }> => {
  const args = ['-aec', 'RADMESH', '-aet', calling, '127.0.0.1', String(node.dicomPort)]
  const { code, stdout, stderr } = await runTool('echoscu', args)
  return { code, output: stdout + stderr }
}

async function warnings(node: StartedNode, pattern: RegExp): Promise<Array<Record<string, unknown>>> {
  return (await logOf(node.home)).filter(
    line => line['level'] === 40 && pattern.test(`${String(line['msg'])} ${String(line['reason'])}`)
  )
}

async function status(pid: number | undefined, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const text = await fs.readFile(`/proc/${pid}/status`, 'utf8')
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1]) / 1024
}

test.before(async () => {
  consortium = await createScratchConsortium()
})

test.after(async () => {
  await Promise.all(
    started.map(async node => {
      await node.kill()
    })
  )
})

test('--max-associations: past it, A-ASSOCIATE-RJ transient, local limit exceeded (raw SCU, echoscu)', async () => {
  const node = await start(['--max-associations', '2'])
  const first = await associate(node, 'FIRST')
  const second = await associate(node, 'SECOND')
  const third = await RawAssociation.connect(node.dicomPort)
  assert.equal(await third.associate(associateRq('RADMESH', 'THIRD', CONTEXTS)), {
    type: 'associate-rj',
    rj: { result: 2, source: 3, reason: 2 }
  })
  const refused = await echoscu(node, 'ECHO')
  assert.is.not(refused.code, 0)
  assert.match(refused.output, /Rejected Transient/i)
  assert.match(refused.output, /Local Limit Exceeded/i)
  const lines = await waitFor('the rejections in node.log', async () => {
    const found = await warnings(node, /too many associations/)
    return found.length >= 2 ? found : undefined
  })
  assert.equal(
    lines.map(line => [line['callingAeTitle'], line['maxAssociations']]),
    [
      ['THIRD', 2],
      ['ECHO', 2]
    ]
  )
  assert.is((await first.release()).type, 'release-rp')
  await waitFor(
    'echoscu to get through once a slot is free',
    async () => (await echoscu(node, 'ECHO')).code === 0,
    5_000,
    100
  )
  second.destroy()
})

test('--pdu-timeout: a PDU that stops midway is aborted; an association quiet between operations stays', async () => {
  const node = await start(['--pdu-timeout', '2s'])
  const quiet = await associate(node, 'QUIET')
  const stalled = await associate(node, 'STALLED')
  const started = Date.now()
  await stalled.send(
    commandPdu(3, storeRq(1, CT, '2.25.1')),
    dataPdu(3, Buffer.alloc(100_000), true).subarray(0, 40_000)
  )
  const answer = await stalled.next(10_000)
  const took = Date.now() - started
  assert.equal(answer, { type: 'abort', abort: { source: 2, reason: 0 } })
  assert.ok(took >= 1_900 && took < 5_000, `aborted after ${took} ms`)
  const [line] = await waitFor('the abort in node.log', async () => {
    const found = await warnings(node, /no byte for 2 s in the middle of a PDU/)
    return found.length > 0 ? found : undefined
  })
  assert.is(line?.['callingAeTitle'], 'STALLED')
  await quiet.send(commandPdu(1, echoRq(1)))
  const echo = await quiet.next(5_000)
  const status = echo.type === 'command' ? echo.command.status : echo.type
  assert.is(status, 0, 'the quiet association, older than the timeout, still answers')
  quiet.destroy()
})

test('--allow-ae and HOME/dicom-peers.json: only the AE titles listed, from their addresses, associate', async () => {
  const node = await start(['--allow-ae', 'FLAGGED@127.0.0.1', '--allow-ae', 'FARAWAY@192.0.2.10'], async home => {
    await fs.writeFile(join(home, 'dicom-peers.json'), JSON.stringify({ allow: ['FROMFILE@127.0.0.0/8'] }))
  })
  for (const calling of ['FLAGGED', 'FROMFILE']) {
    const result = await echoscu(node, calling)
    assert.is(result.code, 0, `${calling}: ${result.output}`)
  }
  for (const calling of ['STRANGER', 'FARAWAY']) {
    const result = await echoscu(node, calling)
    assert.is.not(result.code, 0, calling)
    assert.match(result.output, /Calling AE Title Not Recognized/i, calling)
  }
  const dir = await tempDir()
  const study = await generateCt({ out: dir, slices: 1, rows: 32, columns: 32, seed: 5 })
  const refused = await storescu(node.dicomPort, 'RADMESH', study.files)
  assert.is.not(refused.code, 0, 'storescu calls as TESTSCU, which is not listed')
  const lines = await waitFor('the rejections in node.log', async () => {
    const found = await warnings(node, /calling AE title not allowed/)
    return found.length >= 3 ? found : undefined
  })
  assert.equal(
    lines.map(line => [line['callingAeTitle'], line['address']]),
    [
      ['STRANGER', '127.0.0.1'],
      ['FARAWAY', '127.0.0.1'],
      ['TESTSCU', '127.0.0.1']
    ]
  )
})

test('four associations that each send 300 MB of a data set and then close leave the RSS near its level', async () => {
  const node = await start([])
  const pid = node.process.pid
  // Warm up the store path (one small C-STORE), then the level to come back to.
  const dir = await tempDir()
  const study = await generateCt({ out: dir, slices: 2, rows: 64, columns: 64, seed: 6 })
  assert.is((await storescu(node.dicomPort, 'RADMESH', study.files)).code, 0)
  await new Promise(resolve => setTimeout(resolve, 500))
  const before = await status(pid, 'VmRSS')
  const fragment = Buffer.alloc(1024 * 1024 - 12, 0x5a)
  const scus = await Promise.all(
    [0, 1, 2, 3].map(async i => {
      const scu = await associate(node, `HALF${i}`)
      await scu.send(commandPdu(3, storeRq(1, CT, `2.25.30000${i}`)))
      for (let mb = 0; mb < 300; mb++) await scu.send(dataPdu(3, fragment, false))
      return scu
    })
  )
  const during = await status(pid, 'VmRSS')
  for (const scu of scus) scu.destroy()
  let after = during
  const settled = await waitFor(
    'the RSS to come back',
    async () => {
      after = await status(pid, 'VmRSS')
      return after < before + 150 ? after : undefined
    },
    15_000,
    250
  ).catch(() => undefined)
  const peak = await status(pid, 'VmHWM')
  const figures =
    `RSS ${before.toFixed(0)} MB before, ${during.toFixed(0)} MB with 4 x 300 MB half-sent, ` +
    `${after.toFixed(0)} MB after the close; peak ${peak.toFixed(0)} MB`
  assert.ok(settled !== undefined, figures)
  assert.ok(peak < 1024, figures)
  // The node still works, and logged each association's end.
  assert.is((await storescu(node.dicomPort, 'RADMESH', study.files)).code, 0)
  assert.ok((await warnings(node, /without releasing/)).length >= 4)
})

test('the limits are checked when the node starts', async () => {
  const home = await tempDir()
  for (const [args, message] of [
    [['--dicom', '0', '--max-associations', '0'], /--max-associations 0: give 1 to 1000/],
    [['--dicom', '0', '--pdu-timeout', '2h'], /--pdu-timeout 2h: at most 1h/],
    [['--dicom', '0', '--allow-ae', 'NOHOST'], /--allow-ae "NOHOST": write AE@HOST/],
    [['--allow-ae', 'CT@10.0.0.1'], /--allow-ae: limits of the DICOM port, which only listens with --dicom PORT/]
  ] as const) {
    const result = await radmesh(['start', '--home', home, ...args])
    assert.is.not(result.code, 0)
    assert.match(result.stderr, message)
  }
})

test.run()
