/**
 * Real DICOM files no one here wrote: the test files Debian's python3-pydicom ships (compressed syntaxes,
 * big endian, implicit VR, truncated and broken files), for the tests and the fuzzers' seeds.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'

export const PYDICOM_CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files'

/** Every .dcm file of the corpus, sorted; throws with what to install when it is missing. */
export async function corpusFiles(): Promise<string[]> {
  const names = await fs.readdir(PYDICOM_CORPUS).catch(() => {
    const install = "install Debian's python3-pydicom (npm test does)"
    throw new Error(`the pydicom test corpus is missing at ${PYDICOM_CORPUS}: ${install}`)
  })
  return names
    .filter(name => name.endsWith('.dcm'))
    .sort()
    .map(name => join(PYDICOM_CORPUS, name))
}
