/**
 * What ties the instances of one copy together and what stops a copy: a reference from one instance to another
 * (in nested sequences, in implicit VR, next to private tags) points at the other's new UID, and an image that
 * says identity is burned into its pixels, or an encoding radmesh cannot rewrite, is refused with its reason.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { IMPLICIT_LITTLE, TRANSFER_SYNTAX } from '../../node/dicom/dictionary.ts'
import { type Dataset, type Element, part10Header, writeDataset } from '../../node/dicom/writer.ts'
import { readDicomFile } from '../../node/deid/dataset.ts'
import { DeidentificationError, Deidentifier } from '../../node/deid/index.ts'
import { PYDICOM_CORPUS } from '../../scripts/lib/pydicom-corpus.ts'

const SC = '1.2.840.10008.5.1.4.1.1.7'
const STUDY = '1.2.826.0.1.3680043.2.1125.1.42'
const text = (tag: number, vr: string, value: string): Element => ({ tag, vr, value })

function instance(sop: string, extra: Dataset, implicit = false): Buffer {
  const dataset: Dataset = [
    text(0x00080016, 'UI', SC),
    text(0x00080018, 'UI', sop),
    text(0x00100010, 'PN', 'CANARY^PATIENT'),
    text(0x0020000d, 'UI', STUDY),
    text(0x0020000e, 'UI', `${STUDY}.1`),
    { tag: 0x00091010, vr: 'LO', value: 'GEMS_PRIVATE' },
    { tag: 0x00091001, vr: 'LO', value: 'CANARY PRIVATE' },
    ...extra
  ]
  const syntax = implicit ? TRANSFER_SYNTAX.implicitLittle : TRANSFER_SYNTAX.explicitLittle
  return Buffer.concat([
    part10Header({ sopClassUid: SC, sopInstanceUid: sop, transferSyntaxUid: syntax }),
    writeDataset(dataset, false, implicit ? IMPLICIT_LITTLE : undefined)
  ])
}

/** The text of a value in the copy, found by a path of tags (sequence, item index, …, element). */
function valueAt(bytes: Uint8Array, ...path: number[]): string | undefined {
  let nodes = readDicomFile(bytes).dataset
  for (let i = 0; i < path.length; i += 2) {
    const node = nodes.find(n => n.tag === path[i])
    if (i === path.length - 1)
      return node?.kind === 'value'
        ? Buffer.from(node.bytes)
            .toString('latin1')
            .replace(/[\0 ]+$/, '')
        : undefined
    if (node?.kind !== 'sequence') return undefined
    nodes = node.items[path[i + 1] as number] ?? []
  }
  return undefined
}

test("a reference in a nested sequence points at the other instance's new UID, in explicit and implicit VR", () => {
  for (const implicit of [false, true]) {
    const deidentifier = new Deidentifier()
    const a = deidentifier.instance(instance(`${STUDY}.1.1`, [], implicit))
    const reference: Dataset = [
      text(0x00081150, 'UI', SC),
      text(0x00081155, 'UI', `${STUDY}.1.1`),
      { tag: 0x00091010, vr: 'LO', value: 'GEMS_PRIVATE' }
    ]
    const purpose: Element = { tag: 0x0040a170, vr: 'SQ', value: [[]] }
    const b = deidentifier.instance(
      instance(`${STUDY}.1.2`, [{ tag: 0x00082112, vr: 'SQ', value: [[purpose, ...reference]] }], implicit)
    )
    assert.is(valueAt(b.bytes, 0x00082112, 0, 0x00081155), a.sopInstanceUid)
    assert.is(valueAt(b.bytes, 0x00082112, 0, 0x00081150), SC)
    assert.is(b.studyInstanceUid, a.studyInstanceUid)
    assert.is(b.seriesInstanceUid, a.seriesInstanceUid)
    for (const copy of [a.bytes, b.bytes]) {
      for (const canary of ['CANARY', 'GEMS_PRIVATE', STUDY])
        assert.not.ok(copy.includes(canary), `${canary} in the copy`)
    }
  }
})

test('an image with Burned In Annotation YES is refused, unless the site says the annotation is clean', () => {
  const file = instance(`${STUDY}.9.1`, [text(0x00280301, 'CS', 'YES')])
  try {
    new Deidentifier().instance(file)
    assert.unreachable('a burned-in image was de-identified')
  } catch (error) {
    assert.instance(error, DeidentificationError)
    assert.is((error as DeidentificationError).reason, 'burned-in-annotation')
    assert.is((error as DeidentificationError).code, 'RADMESH_NOT_DEIDENTIFIABLE')
  }
  const copy = new Deidentifier({ burnedInAnnotationClean: true }).instance(file)
  assert.match(valueAt(copy.bytes, 0x00120063) ?? '', /attested clean by site/)
  assert.is(new Deidentifier().instance(instance(`${STUDY}.9.2`, [text(0x00280301, 'CS', 'NO')])).sopClassUid, SC)
})

test('a big endian file is refused rather than have its pixel data converted', () => {
  try {
    new Deidentifier().instance(readFileSync(join(PYDICOM_CORPUS, 'MR_small_bigendian.dcm')))
    assert.unreachable('a big endian file was de-identified')
  } catch (error) {
    assert.instance(error, DeidentificationError)
    assert.is((error as DeidentificationError).reason, 'unsupported')
  }
})

test('a file without a SOP Class UID is refused', () => {
  try {
    new Deidentifier().instance(readFileSync(join(PYDICOM_CORPUS, 'priv_SQ.dcm')))
    assert.unreachable('a file without a SOP class was de-identified')
  } catch (error) {
    assert.is((error as DeidentificationError).reason, 'missing-attribute')
  }
})

test.run()
