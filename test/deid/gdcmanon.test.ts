/**
 * radmesh's copy beside GDCM's: `gdcmanon` (Debian libgdcm-tools) de-identifies the same originals (the pydicom
 * corpus files of deidentify.test.ts and a generated CT with a canary patient) with its own Basic Application
 * Level Confidentiality Profile, and every value it takes out of an original (removes, empties or replaces) must
 * be out of radmesh's copy too: not at the same place, and not under the same attribute anywhere else when
 * gdcmanon left it nowhere. pydicom reads all three files, every attribute at every depth.
 *
 * The one place radmesh keeps what gdcmanon takes is an option of PS3.15 Table E.1-1 the site asked for:
 * Retain Patient Characteristics keeps sex, age, size and weight (the rows marked K in that column), and
 * Retain Longitudinal Temporal Information with Full Dates keeps dates and times (E.3.6). gdcmanon has no options.
 *
 * radmesh is stricter than gdcm 3.0.21, which keeps: private attributes; every date and time but the birth date;
 * Other Patient IDs Sequence (emptying the IDs in it; the table removes it, X); the Verifying Observer and
 * Acquisition Context sequences' content; Requesting Physician, Admission ID, Current Patient Location (X);
 * Contrast/Bolus Agent (Z/D); Dimension Organization UID (U); free text such as Unformatted Text Value and
 * Coding Scheme Name. RADMESH_GDCMANON_REPORT=1 prints these per file.
 */
import { execFile } from 'node:child_process'
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Deidentifier, type DeidentifyOptions } from '../../node/deid/index.ts'
import { ANNEX_E } from '../../node/deid/table.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { PYDICOM_CORPUS } from '../../scripts/lib/pydicom-corpus.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { CORPUS, PYTHON } from './pydicom.ts'

const CANARY = { patientName: 'CANARY^Zoë', patientId: 'CANARY-ID-7731' }

/** Set by whoever writes the file, whatever it holds: group length, transfer syntax, implementation. */
const WRITER_TAGS = new Set([0x00020000, 0x00020010, 0x00020012, 0x00020013, 0x00020016])

/** One attribute with a value, at any depth ("Sequence[0]>Keyword"); bulk values as their SHA-256. */
interface Attribute {
  path: string
  tag: number
  vr: string
  value: string
}

const FLAT_PY = `
import hashlib, json, sys
import pydicom
def flat(name):
    ds = pydicom.dcmread(name)
    out = []
    def walk(dataset, prefix):
        for e in dataset:
            where = prefix + (e.keyword or str(e.tag).replace(' ', ''))
            if e.VR == 'SQ':
                for i, item in enumerate(e.value): walk(item, '%s[%d]>' % (where, i))
                continue
            v = e.value
            if isinstance(v, (bytes, bytearray)): text = hashlib.sha256(v).hexdigest() if v else ''
            elif isinstance(v, pydicom.multival.MultiValue): text = '\\\\'.join(str(x) for x in v)
            else: text = '' if v is None else str(v)
            out.append([where, int(e.tag), e.VR, text.strip()])
    walk(ds.file_meta, '')
    walk(ds, '')
    return out
print(json.dumps([flat(name) for name in sys.argv[1:]]))
`

async function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return await new Promise(resolve => {
    execFile(command, args, { maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr })
    })
  })
}

async function flatten(...files: string[]): Promise<Attribute[][]> {
  const result = await run(PYTHON, ['-c', FLAT_PY, ...files])
  assert.is(result.code, 0, `pydicom: ${result.stderr}`)
  const parsed = JSON.parse(result.stdout) as Array<Array<[string, number, string, string]>>
  return parsed.map(file => file.map(([path, tag, vr, value]) => ({ path, tag, vr, value })))
}

/** gdcmanon's E.1.1 de-identify needs a certificate to encrypt the originals into; a throwaway one does. */
async function certificate(dir: string): Promise<string> {
  const cert = join(dir, 'cert.pem')
  const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=radmesh test']
  const made = await run('openssl', [...args, '-keyout', join(dir, 'key.pem'), '-out', cert])
  assert.is(made.code, 0, `openssl: ${made.stderr}`)
  return cert
}

interface Comparison {
  /** what gdcmanon took out of the original */
  taken: Attribute[]
  /** of those, what radmesh's copy still holds */
  kept: Attribute[]
  /** what gdcmanon left as it was and radmesh did not */
  stricter: Attribute[]
}

function compare(original: Attribute[], gdcm: Attribute[], ours: Attribute[]): Comparison {
  const byPath = (file: Attribute[]) => new Map(file.map(a => [a.path, a.value]))
  const byTag = (file: Attribute[]) => new Set(file.map(a => `${a.tag}=${a.value}`))
  const [gdcmAt, oursAt, gdcmAnywhere, oursAnywhere] = [byPath(gdcm), byPath(ours), byTag(gdcm), byTag(ours)]
  const taken: Attribute[] = []
  const kept: Attribute[] = []
  const stricter: Attribute[] = []
  for (const attribute of original) {
    if (attribute.value === '' || WRITER_TAGS.has(attribute.tag)) continue
    const { path, tag, value } = attribute
    if (gdcmAt.get(path) === value) {
      if (oursAt.get(path) !== value) stricter.push(attribute)
      continue
    }
    taken.push(attribute)
    const elsewhere = !gdcmAnywhere.has(`${tag}=${value}`) && oursAnywhere.has(`${tag}=${value}`)
    if (oursAt.get(path) === value || elsewhere) kept.push(attribute)
  }
  return { taken, kept, stricter }
}

/** Whether an option the site chose keeps this attribute, by Table E.1-1's option columns or, off the table, by VR. */
function keptByOption(attribute: Attribute, options: DeidentifyOptions): boolean {
  const row = ANNEX_E.get(attribute.tag)
  if (options.retainPatientCharacteristics === true && row?.patient === 'K') return true
  if (options.retainDates !== 'full') return false
  return row === undefined ? ['DA', 'DT', 'TM'].includes(attribute.vr) : row.temporal !== undefined
}

const shown = (attributes: Attribute[]): string => attributes.map(a => `${a.path}=${a.value.slice(0, 40)}`).join(', ')

function report(name: string, stricter: Attribute[]): void {
  if (process.env['RADMESH_GDCMANON_REPORT'] !== '1') return
  const kinds = new Set(stricter.map(a => ((a.tag >>> 16) & 1 ? 'private' : a.path.replace(/\[\d+\]/g, '[]'))))
  process.stdout.write(`${name}: stricter than gdcmanon on ${[...kinds].join(' ')}\n`)
}

/** The originals: the corpus files, then a generated two-slice CT whose patient is the canary. */
async function originals(dir: string): Promise<string[]> {
  const ct = await generateCt({ out: join(dir, 'ct'), slices: 2, rows: 16, columns: 16, seed: 7, ...CANARY })
  return [...CORPUS.map(name => join(PYDICOM_CORPUS, name)), ...ct.files]
}

async function compareAll(options: DeidentifyOptions): Promise<Array<{ name: string } & Comparison>> {
  const dir = await tempDir('radmesh-gdcmanon-')
  const cert = await certificate(dir)
  const files = await originals(dir)
  const study = new Deidentifier(options) // the generated CT is one study: one copy
  const results: Array<{ name: string } & Comparison> = []
  for (const [i, original] of files.entries()) {
    const name = i < CORPUS.length ? (CORPUS[i] as string) : `generated CT ${i - CORPUS.length + 1}`
    const theirs = join(dir, `gdcmanon-${i}.dcm`)
    const ours = join(dir, `radmesh-${i}.dcm`)
    const anonymized = await run('gdcmanon', ['-e', '-c', cert, '-i', original, '-o', theirs])
    assert.is(anonymized.code, 0, `gdcmanon ${name}: ${anonymized.stderr}`)
    const deidentifier = i < CORPUS.length ? new Deidentifier(options) : study
    await fs.writeFile(ours, deidentifier.instance(await fs.readFile(original)).bytes)
    const [before, gdcm, after] = (await flatten(original, theirs, ours)) as [Attribute[], Attribute[], Attribute[]]
    const comparison = compare(before, gdcm, after)
    const patientName = before.find(a => a.path === 'PatientName')?.value ?? ''
    const nameTaken = comparison.taken.some(a => a.path === 'PatientName')
    if (patientName !== '') assert.ok(nameTaken, `gdcmanon kept ${name}'s name: the comparison would see nothing`)
    results.push({ name, ...comparison })
  }
  return results
}

test("what gdcmanon takes out of an original is out of radmesh's basic copy too, the canary first", async () => {
  const results = await compareAll({})
  for (const { name, kept, stricter } of results) {
    assert.equal(shown(kept), '', `${name}: radmesh keeps what gdcmanon takes`)
    report(name, stricter)
  }
  const generated = results.filter(r => r.name.startsWith('generated CT'))
  assert.is(generated.length, 2)
  for (const { taken } of generated) {
    const paths = taken.map(a => a.path)
    for (const path of ['PatientName', 'PatientID', 'PatientBirthDate']) assert.ok(paths.includes(path), path)
    assert.ok(taken.some(a => a.value === CANARY.patientName && a.path === 'PatientName'))
  }
})

test("with the options radmesh keeps more than gdcmanon only where Table E.1-1's option columns say", async () => {
  const options: DeidentifyOptions = { retainDates: 'full', retainPatientCharacteristics: true }
  let byOption = 0
  for (const { name, kept } of await compareAll(options)) {
    const unexplained = kept.filter(a => !keptByOption(a, options))
    assert.equal(shown(unexplained), '', `${name}: kept with no option saying so`)
    byOption += kept.length
  }
  assert.ok(byOption > 0, 'no option kept anything gdcmanon takes: the comparison saw nothing')
})

test.run()
