/**
 * The Debian packages the test suite drives for real (DCMTK, dicom3tools, GDCM's gdcmanon, Orthanc with DICOMweb,
 * the pydicom test corpus, Chromium for the viewer, python3-hl7 as a RIS, nftables for the NATs of the relay tests).
 * Missing ones are installed with apt-get (as root, or with sudo when it needs no password); otherwise this
 * stops at once with the exact line to run.
 *
 *   node scripts/system-deps.ts          check, install what is missing
 *   node scripts/system-deps.ts --check  check only
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

interface Requirement {
  pkg: string
  present: () => boolean
  why: string
}

const onPath = (command: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0

export const REQUIREMENTS: Requirement[] = [
  {
    pkg: 'dcmtk',
    present: () => onPath('storescu') && onPath('dcmdump') && onPath('echoscu'),
    why: 'storescu/echoscu/dcmdump: a real DICOM peer'
  },
  { pkg: 'dicom3tools', present: () => onPath('dciodvfy'), why: 'dciodvfy validates objects radmesh writes' },
  { pkg: 'libgdcm-tools', present: () => onPath('gdcmanon'), why: 'gdcmanon, a de-identification to compare with' },
  { pkg: 'openssl', present: () => onPath('openssl'), why: 'a throwaway certificate gdcmanon encrypts originals to' },
  {
    pkg: 'python3-pydicom',
    present: () => existsSync('/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm'),
    why: 'the pydicom test corpus'
  },
  { pkg: 'orthanc', present: () => onPath('Orthanc'), why: 'a real PACS that forwards studies' },
  { pkg: 'chromium', present: () => onPath('chromium'), why: 'headless Chromium runs the viewer tests' },
  {
    pkg: 'orthanc-dicomweb',
    present: () => existsSync('/usr/share/orthanc/plugins/libOrthancDicomWeb.so'),
    why: 'Orthanc DICOMweb, a reference server'
  },
  {
    pkg: 'python3-hl7',
    present: () => existsSync('/usr/lib/python3/dist-packages/hl7/mllp/streams.py'),
    why: 'an HL7 v2 MLLP receiver, the RIS of the HL7 tests'
  },
  {
    pkg: 'iproute2',
    present: () => onPath('ip'),
    why: 'ip netns and veth pairs: the networks of the relay tests'
  },
  {
    pkg: 'nftables',
    present: () => onPath('nft'),
    why: 'nft masquerade rules: the NATs of the relay tests (network namespaces)'
  }
]

const missing = REQUIREMENTS.filter(r => !r.present())
if (missing.length === 0) {
  process.stdout.write(`system packages: ${REQUIREMENTS.map(r => r.pkg).join(', ')} present\n`)
  process.exit(0)
}
const packages = missing.map(r => r.pkg)
const line = `apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')}`
if (process.argv.includes('--check')) {
  process.stderr.write(`missing Debian packages: ${packages.join(', ')}; run as root: ${line}\n`)
  process.exit(1)
}
const isRoot = process.getuid?.() === 0
const sudoWorks = !isRoot && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0
if (!isRoot && !sudoWorks) {
  process.stderr.write(
    `the tests need Debian packages ${packages.join(', ')} (${missing.map(r => r.why).join('; ')}).\n` +
      `Run as root, then npm test again:\n  sudo sh -c '${line}'\n`
  )
  process.exit(1)
}
process.stdout.write(`installing Debian packages: ${packages.join(' ')}\n`)
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
const apt = (...args: string[]): void => {
  execFileSync(isRoot ? 'apt-get' : 'sudo', isRoot ? args : ['-n', 'apt-get', ...args], { stdio: 'inherit', env })
}
try {
  apt('update')
  apt('install', '-y', '--no-install-recommends', ...packages)
} catch {
  process.stderr.write(`apt-get failed; run it yourself, then npm test again:\n  ${line}\n`)
  process.exit(1)
}
const stillMissing = REQUIREMENTS.filter(r => !r.present()).map(r => r.pkg)
if (stillMissing.length > 0) {
  process.stderr.write(`still missing after apt-get: ${stillMissing.join(', ')}\n`)
  process.exit(1)
}
