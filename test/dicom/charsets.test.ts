/**
 * Character sets: the Specific Character Set decodes text as PS3.5 6.1 says, single-byte, UTF-8, GB18030 and
 * ISO 2022 code extensions alike, in the pydicom charset files and by hand; unknown terms read as the default.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CHARSET_VRS, namesUtf8, textCodec } from '../../node/dicom/charsets.ts'
import { type DicomJsonAttribute, type DicomJsonDataset, instanceToDicomJson } from '../../node/dicom/json.ts'

const CHARSETS = '/usr/lib/python3/dist-packages/pydicom/data/charset_files'
const uri = (tag: string): string => `bulk:${tag}`
const convert = async (dir: string, name: string): Promise<DicomJsonDataset> =>
  instanceToDicomJson(new Uint8Array(await fs.readFile(join(dir, name))), uri)

function attribute(dataset: DicomJsonDataset, tag: string): DicomJsonAttribute {
  const found = dataset[tag]
  assert.ok(found, `${tag} is present`)
  return found
}

test('character sets: single-byte, UTF-8, GB18030 and ISO 2022 code extensions', async () => {
  const name = async (file: string): Promise<unknown> => attribute(await convert(CHARSETS, file), '00100010').Value?.[0]
  assert.equal(await name('chrH31.dcm'), {
    Alphabetic: 'Yamada^Tarou',
    Ideographic: '山田^太郎',
    Phonetic: 'やまだ^たろう'
  })
  assert.equal(await name('chrH32.dcm'), {
    Alphabetic: 'ﾔﾏﾀﾞ^ﾀﾛｳ',
    Ideographic: '山田^太郎',
    Phonetic: 'やまだ^たろう'
  })
  assert.equal(await name('chrI2.dcm'), {
    Alphabetic: 'Hong^Gildong',
    Ideographic: '洪^吉洞',
    Phonetic: '홍^길동'
  })
  assert.equal(await name('chrX1.dcm'), { Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小東' })
  assert.equal(await name('chrX2.dcm'), { Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小东' })
  assert.equal(await name('chrRuss.dcm'), { Alphabetic: 'Люкceмбypг' })
  assert.equal(await name('chrGreek.dcm'), { Alphabetic: 'Διονυσιος' })
  assert.equal(await name('chrHbrw.dcm'), { Alphabetic: 'שרון^דבורה' })
  assert.equal(await name('chrFrenMulti.dcm'), { Alphabetic: 'Buc^Jérôme' })
  // A sequence item may set its own character set.
  const sq = await convert(CHARSETS, 'chrSQEncoding.dcm')
  const item = attribute(sq, '00321064').Value?.[0] as DicomJsonDataset
  assert.equal(attribute(item, '00100010').Value?.[0], {
    Alphabetic: 'ﾔﾏﾀﾞ^ﾀﾛｳ',
    Ideographic: '山田^太郎',
    Phonetic: 'やまだ^たろう'
  })
})

test('a codec for each defined term; terms written loosely, unknown ones and none fall back to the default', () => {
  const latin1 = Buffer.from('Buc^J\xe9r\xf4me', 'latin1')
  assert.is(textCodec(['ISO_IR 100']).decode(latin1), 'Buc^Jérôme')
  assert.is(textCodec(['iso ir 100']).decode(latin1), 'Buc^Jérôme')
  assert.is(textCodec([]).decode(latin1), 'Buc^Jérôme')
  assert.is(textCodec(['NOT A CHARSET']).decode(latin1), 'Buc^Jérôme')
  assert.is(textCodec(['ISO_IR 192']).decode(Buffer.from('山田^太郎', 'utf8')), '山田^太郎')
  assert.is(textCodec(['ISO_IR 144']).decode(Buffer.from([0xbb, 0xde, 0xda])), 'Лок')
  // ISO 2022: ESC $ B switches G0 to JIS X 0208, ESC ( B back to ASCII.
  const jis = Buffer.from([0x59, 0x61, 0x3d, 0x1b, 0x24, 0x42, 0x3b, 0x33, 0x45, 0x44, 0x1b, 0x28, 0x42, 0x5e])
  assert.is(textCodec(['', 'ISO 2022 IR 87']).decode(jis), 'Ya=山田^')
})

test('UTF-8 is named by ISO_IR 192 among the terms; the text VRs are those PS3.5 6.1.2.3 lists', () => {
  assert.ok(namesUtf8(Buffer.from('ISO_IR 192')))
  assert.ok(namesUtf8(Buffer.from('ISO_IR 100\\ISO_IR 192')))
  assert.not.ok(namesUtf8(Buffer.from('ISO_IR 100')))
  assert.equal([...CHARSET_VRS].sort(), ['LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UT'])
})

test.run()
