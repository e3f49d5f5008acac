/**
 * The sequences the index keeps (dictionary.ts INDEXED_SEQUENCES), read while a file is parsed: their items'
 * kept attributes, in explicit and implicit VR, nested sequences and other sequences passed over, at most
 * MAX_SEQUENCE_ITEMS items; and kept on the study and series records when the archive stores the instance.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  EXPLICIT_LITTLE,
  IMPLICIT_LITTLE,
  MAX_SEQUENCE_ITEMS,
  type Syntax,
  TRANSFER_SYNTAX
} from '../../node/dicom/dictionary.ts'
import { parsePart10 } from '../../node/dicom/part10.ts'
import { type Element, part10Header, writeDataset } from '../../node/dicom/writer.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { openArchive } from '../helpers/archive.ts'
import { ACTOR } from '../http/fixture.ts'

const SC = '1.2.840.10008.5.1.4.1.1.7'
const UID = { study: '2.25.1032001', series: '2.25.1032002', sop: '2.25.1032003' }

const text = (tag: number, vr: string, value: string | string[]): Element => ({ tag, vr, value })
const sequence = (tag: number, items: Element[][]): Element => ({ tag, vr: 'SQ', value: items })
const code = (value: string, meaning: string): Element[] => [
  text(0x00080100, 'SH', value),
  text(0x00080102, 'SH', 'RADMESH'),
  text(0x00080104, 'LO', meaning)
]

function file(syntax: Syntax, transferSyntaxUid: string): Buffer {
  const dataset: Element[] = [
    text(0x00080016, 'UI', SC),
    text(0x00080018, 'UI', UID.sop),
    text(0x00080060, 'CS', 'OT'),
    // not indexed: its items' attributes are not collected
    sequence(0x00081110, [[text(0x00080100, 'SH', 'OTHER'), text(0x00081155, 'UI', '2.25.9')]]),
    sequence(0x00081032, [
      code('CTHEAD', 'CT head'),
      // a nested sequence's items are not the sequence's items
      [...code('CTNECK', 'CT neck'), sequence(0x00400220, [code('NESTED', 'nested')])]
    ]),
    text(0x00100020, 'LO', 'SEQ1'),
    text(0x0020000d, 'UI', UID.study),
    text(0x0020000e, 'UI', UID.series),
    sequence(
      0x00400275,
      Array.from({ length: MAX_SEQUENCE_ITEMS + 4 }, (_, i) => [
        text(0x00400009, 'SH', ['SPS', String(i)]),
        text(0x00401001, 'SH', `RP${i}`)
      ])
    )
  ]
  return Buffer.concat([
    part10Header({ sopClassUid: SC, sopInstanceUid: UID.sop, transferSyntaxUid }),
    writeDataset(dataset, false, syntax)
  ])
}

const EXPECTED_CODES = [
  { '00080100': 'CTHEAD', '00080102': 'RADMESH', '00080104': 'CT head' },
  { '00080100': 'CTNECK', '00080102': 'RADMESH', '00080104': 'CT neck' }
]

for (const [name, syntax, uid] of [
  ['explicit', EXPLICIT_LITTLE, TRANSFER_SYNTAX.explicitLittle],
  ['implicit', IMPLICIT_LITTLE, TRANSFER_SYNTAX.implicitLittle]
] as const) {
  test(`${name} VR: the kept sequences' items, nested and other sequences passed over, the items bounded`, () => {
    const parsed = parsePart10(file(syntax, uid))
    assert.equal(Object.keys(parsed.sequences).sort(), ['00081032', '00400275'])
    assert.equal(parsed.sequences['00081032'], EXPECTED_CODES)
    const requests = parsed.sequences['00400275'] ?? []
    assert.is(requests.length, MAX_SEQUENCE_ITEMS)
    assert.equal(requests[3], { '00400009': ['SPS', '3'], '00401001': 'RP3' })
    // The top level is read as before.
    assert.is(parsed.attributes['00100020'], 'SEQ1')
    assert.is(parsed.attributes['00080100'], undefined)
  })
}

test('the archive keeps a study sequence on the study record and a series sequence on the series record', async () => {
  const opened = await openArchive(await tempDir())
  try {
    await opened.archive.store(file(EXPLICIT_LITTLE, TRANSFER_SYNTAX.explicitLittle), ACTOR)
    const studies = []
    for await (const study of opened.archive.studies()) studies.push(study)
    assert.equal(studies[0]?.sequences, { '00081032': EXPECTED_CODES })
    const series = []
    for await (const s of opened.archive.seriesOf(UID.study)) series.push(s)
    assert.equal(Object.keys(series[0]?.sequences ?? {}), ['00400275'])
    assert.is(series[0]?.sequences?.['00400275']?.length, MAX_SEQUENCE_ITEMS)
  } finally {
    await opened.close()
  }
})

test.run()
