/**
 * A study on screen: the patient/study banner, the series with thumbnails, the viewport, a DICOM tag
 * panel (T), and, for a case, its priors (priors/panel.ts; one opens beside the current study, compare.ts) and
 * the report panel, whose COMPARISON section offers each prior. Images show as soon as the first one is on this
 * node; the study is asked for again every second while it is still arriving.
 */
import { json, type Availability, type Session, type WorklistEntry } from '../api.ts'
import { clear, h } from '../dom.ts'
import { type DicomJson, personName, text } from '../image/frame-info.ts'
import { defaultWindow, renderFrame } from '../image/render.ts'
import type { View } from '../view.ts'
import type { PriorStudy } from '../../../protocol/api/index.ts'
import { comparisonSentence } from '../priors/describe.ts'
import { openPriorsPanel, type PriorsPanel } from '../priors/panel.ts'
import { openReportPanel, type ReportPanel } from '../report/panel.ts'
import { Comparison } from './compare.ts'
import { lastSeen } from '../worklist-page.ts'
import { type SeriesEntry, StudyLoader } from './loader.ts'
import { PRESETS, Viewport } from './viewport.ts'

const REFRESH_MS = 1_000

declare global {
  interface Window {
    radmesh?: { viewport: Viewport; loader: StudyLoader; comparison?: Comparison | undefined }
  }
}

export async function openStudyPage(
  root: HTMLElement,
  target: { caseId?: string; studyUid?: string; session: Session }
): Promise<View> {
  let entry: WorklistEntry | undefined
  let fresh: Promise<WorklistEntry | undefined> | undefined
  let studyUid = target.studyUid
  if (target.caseId !== undefined) {
    // The images need only the study: they start from the worklist as last seen (polled every 2 s); the
    // report panel waits for the case as it stands now (a consult or claim may be newer).
    const caseId = target.caseId
    fresh = json<WorklistEntry[]>('/api/worklist').then(list => list.find(c => c.caseId === caseId))
    entry = lastSeen.get(caseId) ?? (await fresh)
    if (entry === undefined) {
      clear(
        root,
        h(
          'div',
          { class: 'page' },
          h('p', { class: 'error' }, `Case ${target.caseId} is not on this node's worklist.`),
          h('a', { href: '#/' }, 'Back to the worklist')
        )
      )
      return { close: () => {} }
    }
    studyUid = entry.studyInstanceUid
  }
  const loader = new StudyLoader(studyUid as string)
  const viewport = new Viewport(loader)
  window.radmesh = { viewport, loader }
  const banner = h('div', { class: 'banner', id: 'banner' }, h('span', { class: 'muted' }, 'Loading study…'))
  const seriesList = h('div', { class: 'series', id: 'series' })
  const tags = h('div', { class: 'tags', id: 'tags' })
  viewport.element.append(tags)
  const reportSlot = h('div', { class: 'report', id: 'report' })
  const priorsSlot = h('div', { class: 'priors-panel', id: 'priors' })
  // Shown only while a prior is beside it: which side is which.
  const currentTitle = h('span', { class: 'current-title' })
  const viewports = h(
    'div',
    { class: 'viewports', id: 'viewports' },
    h(
      'div',
      { class: 'current-pane' },
      h('div', { class: 'current-head' }, h('span', { class: 'current-badge' }, 'CURRENT'), currentTitle),
      viewport.element
    )
  )
  clear(
    root,
    h('div', { class: 'study' }, banner, h('div', { class: 'side' }, seriesList, priorsSlot), viewports, reportSlot)
  )
  viewport.element.focus()

  // The case's priors: listed, offered to the report's COMPARISON section, opened beside the current study.
  let comparison: Comparison | undefined
  let report: ReportPanel | undefined
  let comparisons: Array<{ key: string; text: string }> = []
  const closeComparison = (): void => {
    comparison?.close()
    comparison = undefined
    if (window.radmesh !== undefined) window.radmesh.comparison = undefined
    viewports.classList.remove('split')
    priors?.markOpen(undefined)
    viewport.element.focus()
  }
  const openComparison = (prior: PriorStudy): void => {
    closeComparison()
    comparison = new Comparison(viewport, loader, prior, closeComparison)
    if (window.radmesh !== undefined) window.radmesh.comparison = comparison
    viewports.append(comparison.element)
    viewports.classList.add('split')
    priors?.markOpen(prior.studyInstanceUid)
    viewport.element.focus()
  }
  const priors: PriorsPanel | undefined =
    target.caseId === undefined
      ? undefined
      : openPriorsPanel(priorsSlot, target.caseId, {
          onOpen: openComparison,
          onPriors: list => {
            comparisons = list.map(p => ({ key: p.studyInstanceUid, text: comparisonSentence(p) }))
            report?.offerComparisons(comparisons)
          }
        })

  let activeSeries: string | undefined
  const thumbnails = new Map<string, HTMLCanvasElement>()
  const selectSeries = (series: SeriesEntry): void => {
    activeSeries = series.uid
    viewport.setImages(series.images, `${series.modality} ${series.description}`.trim())
    for (const button of seriesList.querySelectorAll('button'))
      button.classList.toggle('active', button.dataset['series'] === series.uid)
  }
  const drawThumbnail = (series: SeriesEntry, canvas: HTMLCanvasElement): void => {
    const middle = series.images[Math.floor(series.images.length / 2)]
    if (middle === undefined) return
    loader
      .load(middle)
      .then(({ frame, info }) => {
        const data = new ImageData(info.columns, info.rows)
        renderFrame(frame, info, defaultWindow(frame, info), data.data)
        canvas.width = info.columns
        canvas.height = info.rows
        ;(canvas.getContext('2d') as CanvasRenderingContext2D).putImageData(data, 0, 0)
      })
      .catch(() => {})
  }
  const renderSeries = (): void => {
    for (const series of loader.series) {
      let canvas = thumbnails.get(series.uid)
      let button = seriesList.querySelector<HTMLButtonElement>(`button[data-series="${CSS.escape(series.uid)}"]`)
      if (canvas === undefined || button === null) {
        canvas = h('canvas', { width: 1, height: 1 })
        thumbnails.set(series.uid, canvas)
        button = h(
          'button',
          {
            class: 'thumb',
            'data-series': series.uid,
            onclick: () => {
              selectSeries(series)
            }
          },
          canvas,
          h('span', {})
        )
        seriesList.append(button)
        drawThumbnail(series, canvas)
      }
      ;(button.querySelector('span') as HTMLSpanElement).textContent =
        `${series.number} ${series.modality} ${series.description} (${series.images.length})`
    }
  }
  const renderBanner = (study: DicomJson | undefined, instance?: DicomJson): void => {
    const source = instance ?? study
    if (source === undefined) return
    currentTitle.textContent = `${formatDate(text(source, '00080020'))} ${text(source, '00081030')}`
    clear(
      banner,
      h('span', {}, h('b', { id: 'patient-name' }, personName(source, '00100010') || 'Unnamed patient')),
      h('span', {}, `ID ${text(source, '00100020')}`),
      h('span', {}, `Born ${formatDate(text(source, '00100030'))}  ${text(source, '00100040')}`),
      h('span', {}, `${formatDate(text(source, '00080020'))} ${text(source, '00081030')}`),
      h('span', {}, `Acc ${text(source, '00080050')}`),
      entry === undefined
        ? null
        : h('span', {}, h('span', { class: `priority ${entry.priority}` }, entry.priority), ` ${entry.status}`),
      h(
        'span',
        { class: 'muted', style: 'margin-left:auto' },
        'Scroll ↑↓ · W/L drag · 1-7 presets · M measure · T tags · R reset · L link prior'
      )
    )
  }
  /** the DICOM JSON of the image on screen */
  let lastJson: DicomJson | undefined
  viewport.onImageChange = (_image, loaded) => {
    renderBanner(loader.study, loaded.json)
    if (tags.classList.contains('open')) renderTags(tags, loaded.json)
    lastJson = loaded.json
  }
  viewport.element.addEventListener('keydown', event => {
    if (event.key !== 't' && event.key !== 'T') return
    tags.classList.toggle('open')
    if (tags.classList.contains('open') && lastJson !== undefined) renderTags(tags, lastJson)
  })

  let closed = false
  let complete = false
  const refresh = async (): Promise<void> => {
    try {
      const [availability, changed] = await Promise.all([
        complete
          ? undefined
          : json<Availability>(`/api/studies/${studyUid}/availability`, { background: true }).catch(() => undefined),
        loader.refresh()
      ])
      // Complete only counts once this refresh has seen everything that was there.
      if (availability?.complete === true) complete = !changed
      if (loader.study !== undefined && lastJson === undefined) renderBanner(loader.study)
      if (changed) {
        renderSeries()
        const active = loader.series.find(s => s.uid === activeSeries) ?? loader.series[0]
        if (active !== undefined) selectSeries(active)
      }
    } catch {}
    if (!closed && !complete)
      timer = setTimeout(() => {
        void refresh()
      }, REFRESH_MS)
  }
  let timer: ReturnType<typeof setTimeout> | undefined
  // Images first: the report panel opens beside them, not before them.
  const images = refresh()
  if (fresh !== undefined) entry = (await fresh.catch(() => entry)) ?? entry
  report =
    entry === undefined
      ? undefined
      : await openReportPanel(reportSlot, entry, target.session, status => {
          if (entry === undefined || (status !== 'FINAL' && status !== 'AMENDED')) return
          entry.status = 'COMPLETED'
          renderBanner(loader.study, lastJson)
        })
  report?.offerComparisons(comparisons)
  if (report === undefined)
    clear(
      reportSlot,
      h('p', { class: 'muted' }, 'No case: this study is shown from the archive.'),
      h('h3', {}, 'Window presets'),
      h('ul', {}, ...PRESETS.map(p => h('li', {}, `${p.key} ${p.name} (W ${p.window.width} L ${p.window.center})`)))
    )

  await images
  return {
    close: () => {
      closed = true
      clearTimeout(timer)
      comparison?.close()
      priors?.close()
      report?.close()
      delete window.radmesh
    }
  }
}

function formatDate(da: string): string {
  return /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}` : da
}

function renderTags(panel: HTMLElement, json: DicomJson): void {
  const rows = Object.entries(json)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([tag, element]) => {
      const value =
        element.Value === undefined
          ? element.BulkDataURI === undefined
            ? ''
            : '(bulk data)'
          : element.Value.map(v =>
              typeof v === 'object' && v !== null
                ? 'Alphabetic' in v
                  ? String((v as { Alphabetic: unknown }).Alphabetic)
                  : '(item)'
                : String(v)
            ).join('\\')
      return h(
        'tr',
        {},
        h('td', {}, `(${tag.slice(0, 4)},${tag.slice(4)})`),
        h('td', {}, element.vr),
        h('td', {}, value.length > 120 ? `${value.slice(0, 120)}…` : value)
      )
    })
  clear(panel, h('table', {}, h('tbody', {}, ...rows)))
}
