/**
 * STOW-RS in process: the route on a real archive, with the archive's incoming objects watched. Each part goes
 * into the archive as its bytes arrive (no request held whole), the route waits when the archive asks it to, the
 * request is not read while a part is stored (TCP holds the sender back), a refused part does not stop the next,
 * and a request cut off stores the parts before the cut and nothing of the cut one.
 */
import { promises as fs } from 'node:fs'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Archive } from '../../node/archive/archive.ts'
import type { IncomingObject } from '../../node/archive/incoming.ts'
import { InvalidDicomError } from '../../node/dicom/errors.ts'
import { isRadmeshError } from '../../node/errors.ts'
import { stowRoutes, type StowRoutesOptions } from '../../node/http/dicomweb/stow.ts'
import { generateCt } from '../../scripts/generate-ct.ts'
import { openArchive, type OpenedArchive } from '../helpers/archive.ts'
import { tempDir } from '../../scripts/lib/temp.ts'
import { waitFor } from '../../scripts/lib/wait.ts'
import {
  closing,
  failureComments,
  failureReasons,
  multipartBody,
  partHead,
  type PostOptions,
  postStream,
  relatedType,
  type StowAnswer,
  storedSops
} from '../helpers/stow.ts'

/** An incoming object of the real archive, watched: what was written, when, and what became of it. */
class Watched {
  readonly inner: IncomingObject
  readonly askToWait: boolean
  length = 0
  writes = 0
  drains = 0
  draining = false
  /** a write came while the route had been asked to wait */
  writtenWhileWaiting = false
  stored = false
  released = false

  constructor(inner: IncomingObject, askToWait: boolean) {
    this.inner = inner
    this.askToWait = askToWait
  }

  write(piece: Uint8Array): boolean {
    if (this.draining) this.writtenWhileWaiting = true
    this.length += piece.length
    this.writes++
    return this.inner.write(piece) && !this.askToWait
  }

  async drain(): Promise<void> {
    this.draining = true
    this.drains++
    await this.inner.drain()
    await new Promise(resolve => setTimeout(resolve, 1))
    this.draining = false
  }

  release(): void {
    this.released = true
    this.inner.release()
  }
}

interface Setup {
  app: FastifyInstance
  port: number
  opened: OpenedArchive
  archive: Archive
  watched: Watched[]
  /** `storeIncoming` waits for this when set */
  gate: Promise<void> | undefined
  close(): Promise<void>
}

/** The STOW-RS route alone, on a real archive whose objects are watched; parts over `limit` bytes are too large. */
async function setup(options: { limit?: number; askToWait?: boolean } = {}): Promise<Setup> {
  const opened = await openArchive(await tempDir())
  const archive = opened.archive
  const watched: Watched[] = []
  const state: Setup = {
    app: Fastify(),
    port: 0,
    opened,
    archive,
    watched,
    gate: undefined,
    close: async () => {
      await state.app.close()
      await opened.close()
    }
  }
  const limit = options.limit ?? Number.MAX_SAFE_INTEGER
  const watchedArchive = {
    store: async (file: Uint8Array, actor: Parameters<Archive['store']>[1]) => await archive.store(file, actor),
    incoming: () => {
      const object = new Watched(archive.incoming(), options.askToWait ?? false)
      watched.push(object)
      return object
    },
    storeIncoming: async (object: Watched, actor: Parameters<Archive['storeIncoming']>[1]) => {
      await state.gate
      if (object.length > limit) {
        object.release()
        throw new InvalidDicomError('too-large', `the object is over ${limit} bytes`)
      }
      object.stored = true
      try {
        return await archive.storeIncoming(object.inner, actor)
      } finally {
        object.released = true
      }
    }
  }
  const app = state.app
  app.addHook('onRequest', async request => {
    request.actor = { type: 'api', id: 'test', address: request.ip }
  })
  // As node/http/server.ts answers errors.
  app.setErrorHandler((error, _request, reply) => {
    const { message } = error as Error
    if (isRadmeshError(error)) return reply.status(error.httpStatus).send({ error: { code: error.code, message } })
    const status = (error as { statusCode?: number }).statusCode ?? 500
    const code = status < 500 ? 'RADMESH_BAD_REQUEST' : 'RADMESH_INTERNAL'
    return reply.status(status).send({ error: { code, message } })
  })
  // Watched stands in for the archive's IncomingObject, a class with private state: the types cannot say so.
  await app.register(stowRoutes, { archive: watchedArchive as unknown as StowRoutesOptions['archive'] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  state.port = (app.server.address() as AddressInfo).port
  return state
}

/** POSTs a STOW-RS body to the route. */
async function post(
  port: number,
  contentType: string,
  pieces: Iterable<Uint8Array>,
  options: PostOptions = {}
): Promise<StowAnswer | undefined> {
  return await postStream(
    `http://127.0.0.1:${port}/dicom-web/studies`,
    { 'content-type': contentType },
    pieces,
    options
  )
}

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1')

async function ctFiles(slices: number, seed: number, size = 128): Promise<{ files: Buffer[]; sopUids: string[] }> {
  const study = await generateCt({ out: await tempDir(), slices, rows: size, columns: size, seed })
  const files = await Promise.all(study.files.map(async path => await fs.readFile(path)))
  return { files, sopUids: files.map(sopUidOf) }
}

/** The SOP Instance UID of a generated file (0008,0018, explicit VR little endian). */
function sopUidOf(file: Buffer): string {
  const at = file.indexOf(Buffer.from([0x08, 0x00, 0x18, 0x00, 0x55, 0x49]))
  return file.toString('latin1', at + 8, at + 8 + file.readUInt16LE(at + 6)).replace(/\0$/, '')
}

test('several instances in one request go into the archive piece by piece, and come back byte-identical', async () => {
  const s = await setup()
  try {
    const { files, sopUids } = await ctFiles(4, 11, 256)
    const answer = await post(s.port, relatedType('stow-several'), multipartBody(files, 'stow-several'))
    assert.is(answer?.status, 200, JSON.stringify(answer?.json))
    assert.equal(storedSops(answer), sopUids)
    assert.is(s.watched.length, 4)
    for (const [i, object] of s.watched.entries()) {
      assert.ok(object.writes > 1, `part ${i + 1} was written in ${object.writes} pieces`)
      assert.ok(object.stored && object.released)
    }
    for (const [i, sop] of sopUids.entries()) {
      const instance = await s.archive.instance(sop)
      assert.ok(instance !== undefined, sop)
      assert.equal(await s.archive.read(instance), files[i])
    }
  } finally {
    await s.close()
  }
})

test('the route waits for drain() when the archive asks it to, and writes nothing meanwhile', async () => {
  const s = await setup({ askToWait: true })
  try {
    const { files } = await ctFiles(2, 12, 256)
    const answer = await post(s.port, relatedType('b'), multipartBody(files, 'b', 4096))
    assert.is(answer?.status, 200, JSON.stringify(answer?.json))
    assert.is(s.watched.length, 2)
    for (const object of s.watched) {
      assert.ok(object.drains > 0, 'drain() was awaited')
      assert.not.ok(object.writtenWhileWaiting, 'a piece was written before drain() resolved')
    }
  } finally {
    await s.close()
  }
})

test('a part over the size limit is refused (A700, with its reason) and the parts after it are stored', async () => {
  const s = await setup({ limit: 200 * 1024 })
  try {
    const { files, sopUids } = await ctFiles(3, 13, 256) // ~130 KB each
    const big = (await ctFiles(1, 14, 512)).files[0] as Buffer // ~520 KB
    const text = latin1('not DICOM')
    const body = [...multipartBody([files[0] as Buffer, big, files[1] as Buffer], 'limit')].slice(0, -1)
    body.push(partHead('limit', false, 'text/plain'), text)
    body.push(partHead('limit', false), files[2] as Buffer, closing('limit'))
    const answer = await post(s.port, relatedType('limit'), body)
    assert.is(answer?.status, 202, JSON.stringify(answer?.json))
    assert.equal(storedSops(answer), sopUids)
    assert.equal(failureReasons(answer), [0xa700, 0xc000])
    assert.match(failureComments(answer)[0] ?? '', /^part 2: .*over 204800 bytes/)
    assert.match(failureComments(answer)[1] ?? '', /^part 4 is text\/plain/)
    assert.ok(
      s.watched.every(object => object.released),
      'every incoming object was let go'
    )
  } finally {
    await s.close()
  }
})

test('while a part is being stored the request is not read: TCP holds the sender back', async () => {
  const s = await setup()
  let open: () => void = () => {}
  s.gate = new Promise(resolve => {
    open = resolve
  })
  try {
    const { files } = await ctFiles(1, 15, 64)
    const total = 256 * 1024 * 1024
    let written = 0
    function* body(): Generator<Uint8Array> {
      yield* [...multipartBody([files[0] as Buffer], 'gate')].slice(0, -1)
      yield partHead('gate', false)
      const piece = Buffer.alloc(1024 * 1024, 0x0d)
      for (let sent = 0; sent < total; sent += piece.length) yield piece
      yield closing('gate')
    }
    const posting = post(s.port, relatedType('gate'), body(), {
      progress: n => {
        written = n
      }
    })
    await waitFor('the first part to reach the archive', () => s.watched[0]?.stored === false && written > 0)
    await new Promise(resolve => setTimeout(resolve, 1500))
    const whileStoring = written
    open()
    const answer = await posting
    const mib = (whileStoring / 1048576).toFixed(1)
    assert.ok(whileStoring < 32 * 1024 * 1024, `the client wrote ${mib} MiB while the first part was stored`)
    assert.is(answer?.status, 202, JSON.stringify(answer?.json))
    assert.match(failureComments(answer)[0] ?? '', /^part 2: /)
  } finally {
    open()
    await s.close()
  }
})

test('a request cut off mid-part keeps the parts before the cut and nothing of the cut one', async () => {
  const s = await setup()
  try {
    const { files, sopUids } = await ctFiles(2, 16, 256)
    const pieces = [...multipartBody(files, 'cut', 8192)]
    const cutAt = (files[0]?.length ?? 0) + (files[1]?.length ?? 0) / 2
    assert.is(await post(s.port, relatedType('cut'), pieces, { stopAfter: cutAt }), undefined)
    await waitFor('the cut part to be let go', () => s.watched.length === 2 && s.watched[1]?.released)
    assert.ok(s.watched[0]?.stored, 'the whole first part was stored')
    assert.not.ok(s.watched[1]?.stored, 'the cut part went to the archive')
    assert.ok((await s.archive.instance(sopUids[0] as string)) !== undefined)
    assert.is(await s.archive.instance(sopUids[1] as string), undefined)
    // The route still takes requests.
    const again = await post(s.port, relatedType('cut'), multipartBody([files[1] as Buffer], 'cut'))
    assert.is(again?.status, 200, JSON.stringify(again?.json))
  } finally {
    await s.close()
  }
})

test('a body that breaks after whole parts: those are stored, and the fault is the last failure', async () => {
  const s = await setup()
  try {
    const { files, sopUids } = await ctFiles(2, 17, 64)
    const body = [...multipartBody(files, 'brk')].slice(0, -1)
    body.push(latin1(`\r\n--brk\r\nX-Long: ${'x'.repeat(20000)}\r\n\r\n`), closing('brk'))
    const answer = await post(s.port, relatedType('brk'), body)
    assert.is(answer?.status, 202, JSON.stringify(answer?.json))
    assert.equal(storedSops(answer), sopUids)
    assert.match(failureComments(answer)[0] ?? '', /could not be read: multipart part 3 has no end of headers/)
  } finally {
    await s.close()
  }
})

test('media types and boundaries: 415, 400, and the 73-character boundary Orthanc sends', async () => {
  const s = await setup()
  try {
    const { files, sopUids } = await ctFiles(1, 18, 64)
    const file = files[0] as Buffer
    const cases: Array<[string, Iterable<Uint8Array>, number, string]> = [
      ['application/dicom', [file], 415, 'RADMESH_UNSUPPORTED_MEDIA_TYPE'],
      ['application/json', [latin1('{}')], 415, 'RADMESH_UNSUPPORTED_MEDIA_TYPE'],
      ['multipart/related; type="application/dicom"', multipartBody([file], 'x'), 400, 'RADMESH_BAD_REQUEST'],
      [relatedType(''), multipartBody([file], 'x'), 400, 'RADMESH_BAD_REQUEST'],
      [relatedType('x'.repeat(201)), multipartBody([file], 'x'.repeat(201)), 400, 'RADMESH_BAD_REQUEST'],
      [relatedType('x'), [latin1('no delimiter here')], 400, 'RADMESH_BAD_REQUEST'],
      [relatedType('x'), [latin1('--x\r\nContent-Type: application/dicom\r\n\r\n'), file], 400, 'RADMESH_BAD_REQUEST']
    ]
    for (const [contentType, body, status, code] of cases) {
      const answer = await post(s.port, contentType, body)
      assert.is(answer?.status, status, contentType)
      assert.is(answer?.json.error?.code, code, contentType)
    }
    const orthanc = '8f0e3f1c-6bd5-4a39-9b7f-3f0a3b8ad4f2-0c6e9d34-1c1e-4bb0-9a6c-1b1a0f6f6e0e'
    const answer = await post(s.port, relatedType(orthanc), multipartBody([file], orthanc))
    assert.is(answer?.status, 200, JSON.stringify(answer?.json))
    assert.equal(storedSops(answer), sopUids)
  } finally {
    await s.close()
  }
})

test.run()
