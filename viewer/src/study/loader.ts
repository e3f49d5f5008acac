/**
 * A study as the viewer sees it, through the node's DICOMweb routes (any DICOMweb server would do): the
 * series and instances found so far by QIDO-RS (asked again while the study is still arriving), each
 * instance's DICOM JSON (WADO-RS metadata) and its frames (WADO-RS frames), decoded once and kept.
 */
import { parseContentType, parseMultipartRelated } from '../../../protocol/dicomweb/multipart.ts'
import { request } from '../api.ts'
import { type DecodedFrame, decodeFrame } from '../image/decode.ts'
import { browserCodecs } from '../image/codecs-browser.ts'
import { type DicomJson, type FrameInfo, frameCount, frameInfo, number, text } from '../image/frame-info.ts'

export interface Image {
  sopUid: string
  seriesUid: string
  /** 1-based frame of its instance */
  frame: number
  instanceNumber: number
}

export interface SeriesEntry {
  uid: string
  number: number
  description: string
  modality: string
  images: Image[]
}

export interface LoadedImage {
  frame: DecodedFrame
  info: FrameInfo
  json: DicomJson
}

/** Frames fetched at once: enough to keep a link busy, few enough to leave room for the image on screen. */
const CONCURRENT_FETCHES = 4

const DICOMWEB = '/dicom-web'

export class StudyLoader {
  readonly studyUid: string
  study: DicomJson | undefined
  series: SeriesEntry[] = []
  private readonly metadata = new Map<string, Promise<DicomJson>>()
  private readonly images = new Map<string, Promise<LoadedImage>>()
  private readonly queue: Array<() => void> = []
  private running = 0

  constructor(studyUid: string) {
    this.studyUid = studyUid
  }

  /** Asks the node what is there now; true when there are new series or images. */
  async refresh(): Promise<boolean> {
    const base = `${DICOMWEB}/studies/${this.studyUid}`
    const [studies, seriesList] = await Promise.all([
      this.study === undefined
        ? request(`${DICOMWEB}/studies?StudyInstanceUID=${this.studyUid}&includefield=all`, { background: true }).then(
            async r => (await r.json()) as DicomJson[]
          )
        : undefined,
      request(`${base}/series`, { background: true }).then(async r => (await r.json()) as DicomJson[])
    ])
    if (studies !== undefined) this.study = studies[0]
    let changed = false
    for (const json of seriesList) {
      const uid = text(json, '0020000E')
      let entry = this.series.find(s => s.uid === uid)
      if (entry === undefined) {
        entry = {
          uid,
          number: number(json, '00200011', 0),
          description: text(json, '0008103E'),
          modality: text(json, '00080060'),
          images: []
        }
        this.series.push(entry)
        changed = true
      }
      const have = new Set(entry.images.map(i => i.sopUid))
      if (number(json, '00201209', 0) === have.size) continue
      const instances = (await (
        await request(`${base}/series/${uid}/instances`, { background: true })
      ).json()) as DicomJson[]
      for (const instance of instances) {
        const sopUid = text(instance, '00080018')
        if (have.has(sopUid)) continue
        const frames = frameCount(instance)
        for (let frame = 1; frame <= frames; frame++)
          entry.images.push({ sopUid, seriesUid: uid, frame, instanceNumber: number(instance, '00200013', 0) })
        changed = true
      }
      entry.images.sort(
        (a, b) =>
          a.instanceNumber - b.instanceNumber ||
          (a.sopUid < b.sopUid ? -1 : a.sopUid > b.sopUid ? 1 : 0) ||
          a.frame - b.frame
      )
    }
    this.series.sort((a, b) => a.number - b.number)
    return changed
  }

  /**
   * The DICOM JSON of every instance of a series in one request (WADO-RS series metadata), by SOP Instance UID,
   * for what needs the whole stack at once (the geometry that links a prior's slices); each instance's metadata
   * is kept for the images too.
   */
  async seriesMetadata(seriesUid: string): Promise<Map<string, DicomJson>> {
    const response = await request(`${DICOMWEB}/studies/${this.studyUid}/series/${seriesUid}/metadata`, {
      background: true
    })
    const byInstance = new Map<string, DicomJson>()
    for (const json of (await response.json()) as DicomJson[]) {
      const sopUid = text(json, '00080018')
      byInstance.set(sopUid, json)
      if (!this.metadata.has(sopUid)) this.metadata.set(sopUid, Promise.resolve(json))
    }
    return byInstance
  }

  instanceMetadata(image: Image, urgent = false): Promise<DicomJson> {
    let json = this.metadata.get(image.sopUid)
    if (json === undefined) {
      json = this.limited(urgent, async () => {
        const list = (await (
          await request(
            `${DICOMWEB}/studies/${this.studyUid}/series/${image.seriesUid}/instances/${image.sopUid}/metadata`,
            { background: true }
          )
        ).json()) as DicomJson[]
        const found = list[0]
        if (found === undefined) throw new Error(`no metadata for instance ${image.sopUid}`)
        return found
      })
      json.catch(() => {
        this.metadata.delete(image.sopUid)
      })
      this.metadata.set(image.sopUid, json)
    }
    return json
  }

  /**
   * The image decoded (fetched once; a failure is forgotten so the next call tries again). `urgent`: the
   * image on screen goes before prefetched ones.
   */
  load(image: Image, urgent = false): Promise<LoadedImage> {
    const key = `${image.sopUid}#${image.frame}`
    let loaded = this.images.get(key)
    if (loaded === undefined) {
      loaded = (async () => {
        // The metadata and the frame are asked for at once: the frame is most of the wait.
        const [json, response] = await Promise.all([
          this.instanceMetadata(image, urgent),
          this.limited(
            urgent,
            async () =>
              await request(
                `${DICOMWEB}/studies/${this.studyUid}/series/${image.seriesUid}` +
                  `/instances/${image.sopUid}/frames/${image.frame}`,
                { background: true, accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' }
              )
          )
        ])
        const contentType = response.headers.get('content-type') ?? ''
        const [part] = parseMultipartRelated(new Uint8Array(await response.arrayBuffer()), contentType)
        if (part === undefined) throw new Error('the frame response has no part')
        const partType = parseContentType(part.headers['content-type'] ?? '')
        const syntax =
          partType.params['transfer-syntax'] ??
          parseContentType(contentType).params['transfer-syntax'] ??
          '1.2.840.10008.1.2.1'
        const info = frameInfo(json, syntax)
        return { frame: await decodeFrame(part.body, info, browserCodecs), info, json }
      })()
      loaded.catch(() => {
        this.images.delete(key)
      })
      this.images.set(key, loaded)
    }
    return loaded
  }

  isLoaded(image: Image): boolean {
    return this.images.has(`${image.sopUid}#${image.frame}`)
  }

  private async limited<T>(urgent: boolean, task: () => Promise<T>): Promise<T> {
    if (this.running >= CONCURRENT_FETCHES)
      await new Promise<void>(resolve => {
        if (urgent) this.queue.unshift(resolve)
        else this.queue.push(resolve)
      })
    this.running++
    try {
      return await task()
    } finally {
      this.running--
      this.queue.shift()?.()
    }
  }
}
