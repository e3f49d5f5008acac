/**
 * Crafted objects against a real node process, while a watcher polls /api/health every 100 ms and samples the
 * node's RSS: each is refused with its reason, the node answers within 1 s throughout and stays under 1 GB.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { deflateRawSync, constants as zlib } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { part10Header } from '../../node/dicom/part10.ts'
import { tag, writeDataset } from '../../node/reports/dataset-writer.ts'
import { createScratchConsortium } from '../../scripts/lib/consortium.ts'
import { runTool, storescu } from '../../scripts/lib/dcmtk.ts'
import { filesUnder } from '../helpers/dicom.ts'
import { PYDICOM_CORPUS } from '../../scripts/lib/pydicom-corpus.ts'
import { radmesh } from '../../scripts/lib/cli.ts'
import { type StartedNode, startNode } from '../../scripts/lib/node-process.ts'
import { tempDir } from '../../scripts/lib/temp.ts'

let node: StartedNode

/** Polls /api/health and the node's RSS until stopped: the slowest answer and the highest RSS seen. */
function watch(n: StartedNode): { stop: () => Promise<{ slowestMs: number; peakRssMb: number }> } {
  let slowest = 0
  let peak = 0
  let running = true
  const rss = async (): Promise<number> => {
    const status = await fs.readFile(`/proc/${n.process.pid}/status`, 'utf8').catch(() => '')
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
  }
  const loop = (async () => {
    while (running) {
      const started = performance.now()
      const ok = await n.api('GET', '/api/health').then(
        r => r.status === 200,
        () => false
      )
      slowest = Math.max(slowest, ok ? performance.now() - started : Number.POSITIVE_INFINITY)
      peak = Math.max(peak, await rss())
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return { slowestMs: slowest, peakRssMb: peak }
    }
  }
}

function assertHealthy(seen: { slowestMs: number; peakRssMb: number }, what: string): void {
  assert.ok(seen.slowestMs < 1000, `${what}: /api/health took ${seen.slowestMs.toFixed(0)} ms`)
  assert.ok(seen.peakRssMb < 1024, `${what}: RSS reached ${seen.peakRssMb.toFixed(0)} MB`)
}

test.before(async () => {
  const consortium = await createScratchConsortium()
  node = await startNode(await consortium.member('Hardened Site', 'site'), { dicom: true })
})

test.after(async () => {
  await node.kill()
})

test(
  'an image that declares a billion frames, sent by ' + 'storescu, is refused with a reason; the node stays up',
  async () => {
    const dir = await tempDir()
    const planted = join(dir, 'planted.dcm')
    await fs.copyFile(join(PYDICOM_CORPUS, 'CT_small.dcm'), planted)
    const modified = await runTool('dcmodify', ['-nb', '-gst', '-gse', '-gin', '-i', '(0028,0008)=1000000000', planted])
    assert.is(modified.code, 0, modified.stderr)
    const watcher = watch(node)
    const sent = await storescu(node.dicomPort, 'RADMESH', [planted], ['-d'])
    const seen = await watcher.stop()
    assert.match(sent.stdout + sent.stderr, /DIMSE Status\s+: 0xc000/, sent.stdout + sent.stderr)
    assert.match(
      sent.stdout + sent.stderr,
      /\(0000,0902\) LO \[Number of Frames is 1000000000/,
      'the error comment says why'
    )
    assertHealthy(seen, 'planted frames')
    const sop = /\(0008,0018\) UI \[([0-9.]+)\]/.exec(
      (await runTool('dcmdump', ['+P', '0008,0018', planted])).stdout
    )?.[1] as string
    assert.is((await node.fetch(`/api/instances/${sop}`)).status, 404)
  }
)

test(
  'a deflate bomb (4 MB that inflates to 4 GB) is refused ' + 'as too large; the node stays responsive and small',
  async () => {
    const sop = `2.25.${Date.now()}`
    const header = Buffer.concat([
      writeDataset(
        [
          { tag: tag(0x0008, 0x0016), vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' },
          { tag: tag(0x0008, 0x0018), vr: 'UI', value: sop },
          { tag: tag(0x0020, 0x000d), vr: 'UI', value: `${sop}.1` },
          { tag: tag(0x0020, 0x000e), vr: 'UI', value: `${sop}.2` }
        ],
        false
      ),
      Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0, 0xf0, 0xff, 0xff, 0xff])
    ])
    // One compressed block of 64 MB of zeros, repeated: a raw deflate stream of 4 GB in about 4 MB.
    const block = deflateRawSync(Buffer.alloc(64 * 1024 * 1024), { level: 9, finishFlush: zlib.Z_FULL_FLUSH })
    const bomb = Buffer.concat([
      part10Header({
        sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
        sopInstanceUid: sop,
        transferSyntaxUid: '1.2.840.10008.1.2.1.99'
      }),
      deflateRawSync(header, { finishFlush: zlib.Z_FULL_FLUSH }),
      ...Array.from({ length: 64 }, () => block),
      Buffer.from([0x03, 0x00])
    ])
    const path = join(await tempDir(), 'bomb.dcm')
    await fs.writeFile(path, bomb)
    const watcher = watch(node)
    const result = await radmesh(['import', '--home', node.home, path])
    const seen = await watcher.stop()
    assert.is(result.code, 1, result.stdout + result.stderr)
    assert.match(result.stderr, /deflate bomb/)
    assertHealthy(seen, 'deflate bomb')
  }
)

test(
  'a canary name, id and birth date sent by C-STORE and ' + 'STOW-RS, then queried and read, are in no file under HOME',
  async () => {
    const dir = await tempDir()
    const name = 'ZZCANARY^QUOKKA'
    const id = 'CANARY77311'
    const birth = '19010203'
    const files: string[] = []
    for (const via of ['cstore', 'stow']) {
      const path = join(dir, `${via}.dcm`)
      await fs.copyFile(join(PYDICOM_CORPUS, 'CT_small.dcm'), path)
      const modified = await runTool('dcmodify', [
        '-nb',
        '-gst',
        '-gse',
        '-gin',
        '-m',
        `(0010,0010)=${name}`,
        '-m',
        `(0010,0020)=${id}`,
        '-m',
        `(0010,0030)=${birth}`,
        path
      ])
      assert.is(modified.code, 0, modified.stderr)
      files.push(path)
    }
    const sent = await storescu(node.dicomPort, 'RADMESH', [files[0] as string])
    assert.match(sent.stdout + sent.stderr, /Received Store Response \(Success\)/)
    const boundary = 'canary-boundary'
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
      await fs.readFile(files[1] as string),
      Buffer.from(`\r\n--${boundary}--\r\n`)
    ])
    const stow = await node.fetch('/dicom-web/studies', {
      method: 'POST',
      body,
      headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` }
    })
    assert.is(stow.status, 200)
    const found = await node.fetch(
      `/dicom-web/studies?PatientName=${encodeURIComponent(name)}&PatientID=${id}&PatientBirthDate=${birth}`
    )
    const studies = (await found.json()) as Array<Record<string, { Value?: unknown[] }>>
    assert.is(studies.length, 2, 'both studies found by the canary')
    for (const study of studies) {
      const uid = study['0020000D']?.Value?.[0] as string
      assert.is((await node.fetch(`/dicom-web/studies/${uid}/metadata`)).status, 200)
      assert.is((await node.fetch(`/dicom-web/studies/${uid}`)).status, 200)
    }
    await node.stop()
    try {
      for (const needle of [name, id, birth, 'QUOKKA']) {
        for (const bytes of [Buffer.from(needle, 'utf8'), Buffer.from(needle, 'utf16le')]) {
          for await (const path of filesUnder(node.home)) {
            assert.is((await fs.readFile(path)).indexOf(bytes), -1, `"${needle}" is readable in ${path}`)
          }
        }
      }
    } finally {
      node = await startNode(node.home, { dicom: true })
    }
  }
)

test.run()
