/**
 * A prior beside the current study: a second Viewport (the same viewport code, on the prior's own loader) with
 * the prior's series to choose from, linked to the current study's viewport:
 *
 *   scrolling   either viewport moves the other to the matching slice (slice-link.ts: by slice position when
 *               both stacks are axial in one Frame of Reference, else by relative index; the indicator says which)
 *   window      a window/level change in either (drag, preset, reset) is applied to both
 *   L           in either viewport: unlink / link again (linking again brings the prior to the current slice and
 *               window)
 *   series      the prior shows the series that goes with the current one (same description, else modality), and
 *               follows when the reader picks another current series, until the reader picks a prior series
 *
 * The prior is asked for again every second while it is still arriving, as the current study is.
 */
import type { PriorStudy } from '../../../protocol/api/index.ts'
import { type Availability, json } from '../api.ts'
import { clear, h } from '../dom.ts'
import type { Window } from '../image/render.ts'
import { formatDicomDate, studyName } from '../priors/describe.ts'
import { type SeriesEntry, StudyLoader } from './loader.ts'
import { type LinkMethod, linkSlices, type SliceGeometry, type SliceLink, sliceGeometry } from './slice-link.ts'
import { Viewport } from './viewport.ts'

const REFRESH_MS = 1_000

export interface ComparisonState {
  prior: string
  linked: boolean
  /** how the stacks on screen are linked, once known */
  method: LinkMethod | undefined
  reason: string | undefined
}

export class Comparison {
  readonly element: HTMLDivElement
  readonly viewport: Viewport
  readonly loader: StudyLoader
  readonly prior: PriorStudy
  private readonly main: Viewport
  private readonly mainLoader: StudyLoader
  private readonly indicator: HTMLButtonElement
  private readonly seriesSelect: HTMLSelectElement
  private linked = true
  /** set while one viewport is being moved to follow the other, so the move is not echoed back */
  private following = false
  private link: { key: string; value: Promise<SliceLink>; resolved?: SliceLink } | undefined
  private activeSeries: string | undefined
  /** the current study's series the prior's was chosen for */
  private mainSeries: string | undefined
  /** the reader chose the prior's series: it no longer follows the current one */
  private seriesChosen = false
  private closed = false
  private timer: ReturnType<typeof setTimeout> | undefined
  private readonly keys = (event: KeyboardEvent): void => {
    if (event.key !== 'l' && event.key !== 'L') return
    event.preventDefault()
    this.setLinked(!this.linked)
  }

  constructor(main: Viewport, mainLoader: StudyLoader, prior: PriorStudy, onClose: () => void) {
    this.main = main
    this.mainLoader = mainLoader
    this.prior = prior
    this.loader = new StudyLoader(prior.studyInstanceUid)
    this.viewport = new Viewport(this.loader, { id: 'prior-viewport' })
    this.seriesSelect = h('select', { id: 'prior-series', title: "The prior's series" })
    this.seriesSelect.addEventListener('change', () => {
      const series = this.loader.series.find(s => s.uid === this.seriesSelect.value)
      if (series === undefined) return
      this.seriesChosen = true
      this.showSeries(series)
    })
    this.indicator = h('button', {
      class: 'link-state',
      id: 'link-state',
      title: 'L: link or unlink scrolling and window/level',
      onclick: () => {
        this.setLinked(!this.linked)
      }
    })
    const title = `${formatDicomDate(prior.studyDate) || 'no date'} ${studyName(prior)}`
    this.element = h(
      'div',
      { class: 'prior-pane', id: 'prior-pane', 'data-prior': prior.studyInstanceUid },
      h(
        'div',
        { class: 'prior-head' },
        h('span', { class: 'prior-badge' }, 'PRIOR'),
        h('span', { class: 'prior-title', id: 'prior-title' }, title),
        this.seriesSelect,
        this.indicator,
        h('button', { id: 'prior-close', title: 'Close the prior', onclick: onClose }, '✕')
      ),
      this.viewport.element
    )
    this.mainSeries = main.stack()[0]?.seriesUid
    main.onIndexChange = index => {
      this.followSeries()
      void this.follow('current', index)
    }
    this.viewport.onIndexChange = index => {
      void this.follow('prior', index)
    }
    main.onWindowChange = (window, name) => {
      this.shareWindow(this.viewport, window, name)
    }
    this.viewport.onWindowChange = (window, name) => {
      this.shareWindow(this.main, window, name)
    }
    main.element.addEventListener('keydown', this.keys)
    this.viewport.element.addEventListener('keydown', this.keys)
    this.renderIndicator()
    void this.refresh()
  }

  state(): ComparisonState {
    return {
      prior: this.prior.studyInstanceUid,
      linked: this.linked,
      method: this.link?.resolved?.method,
      reason: this.link?.resolved?.reason
    }
  }

  setLinked(linked: boolean): void {
    this.linked = linked
    this.renderIndicator()
    if (!linked) return
    const window = this.main.state().window
    if (window !== undefined) this.shareWindow(this.viewport, window, '')
    void this.follow('current', this.main.state().index)
  }

  close(): void {
    this.closed = true
    clearTimeout(this.timer)
    this.main.onIndexChange = () => {}
    this.main.onWindowChange = () => {}
    this.main.element.removeEventListener('keydown', this.keys)
    this.element.remove()
  }

  private renderIndicator(): void {
    const resolved = this.link?.resolved
    this.indicator.dataset['linked'] = String(this.linked)
    this.indicator.dataset['method'] = resolved?.method ?? ''
    this.indicator.classList.toggle('unlinked', !this.linked)
    this.indicator.textContent = !this.linked
      ? 'Unlinked (L)'
      : resolved === undefined
        ? 'Linked (L)'
        : resolved.method === 'position'
          ? 'Linked by position (L)'
          : 'Linked by index (L)'
    this.indicator.title =
      resolved === undefined
        ? 'L: link or unlink scrolling and window/level'
        : `L: link or unlink. ${resolved.method === 'position' ? 'By position' : 'By index'}: ${resolved.reason}`
  }

  private shareWindow(to: Viewport, window: Window, name: string): void {
    if (!this.linked || this.following) return
    this.following = true
    try {
      to.setWindow(window, name)
    } finally {
      this.following = false
    }
  }

  /** Moves the other viewport to the slice that goes with the one `from` shows now. */
  private async follow(from: 'current' | 'prior', index: number): Promise<void> {
    if (!this.linked || this.following) return
    const link = await this.linkNow()
    if (link === undefined || !this.linked || this.closed) return
    const source = from === 'current' ? this.main : this.viewport
    const target = from === 'current' ? this.viewport : this.main
    // The source may have moved on while the link was worked out: follow where it is now.
    const now = source.state().count === 0 ? index : source.state().index
    this.following = true
    try {
      void target.show(link.map(now, from === 'current' ? 'b' : 'a'))
    } finally {
      this.following = false
    }
  }

  /** The link between the stacks on screen now (a = current, b = prior), worked out once per pair of stacks. */
  private linkNow(): Promise<SliceLink | undefined> {
    const a = this.main.stack()
    const b = this.viewport.stack()
    const seriesA = a[0]?.seriesUid
    const seriesB = b[0]?.seriesUid
    if (seriesA === undefined || seriesB === undefined) return Promise.resolve(undefined)
    const key = `${seriesA}:${a.length}|${seriesB}:${b.length}`
    if (this.link?.key !== key) {
      const geometry = async (loader: StudyLoader, seriesUid: string, images: typeof a) => {
        const byInstance = await loader.seriesMetadata(seriesUid)
        return images.map(image => sliceGeometry(byInstance.get(image.sopUid) ?? {}))
      }
      const entry: NonNullable<Comparison['link']> = {
        key,
        value: Promise.all([geometry(this.mainLoader, seriesA, a), geometry(this.loader, seriesB, b)])
          .catch((): SliceGeometry[][] => [[], []])
          .then(([ga, gb]) =>
            ga.length === a.length && gb.length === b.length
              ? linkSlices(ga, gb)
              : linkSlices(
                  a.map(() => sliceGeometry({})),
                  b.map(() => sliceGeometry({}))
                )
          )
      }
      void entry.value.then(link => {
        entry.resolved = link
        if (this.link === entry) this.renderIndicator()
      })
      this.link = entry
    }
    return this.link.value
  }

  private showSeries(series: SeriesEntry): void {
    this.activeSeries = series.uid
    this.seriesSelect.value = series.uid
    // The prior's new stack starts at its first image: the current study does not follow that, the prior follows it.
    this.following = true
    try {
      this.viewport.setImages(series.images, `PRIOR ${series.modality} ${series.description}`.trim())
    } finally {
      this.following = false
    }
    if (this.linked) this.setLinked(true)
  }

  /** After the reader picks another series of the current study: the prior's that goes with it. */
  private followSeries(): void {
    const uid = this.main.stack()[0]?.seriesUid
    if (uid === this.mainSeries) return
    this.mainSeries = uid
    if (this.seriesChosen) return
    const best = this.bestSeries()
    if (best !== undefined && best.uid !== this.activeSeries) this.showSeries(best)
  }

  /** The prior series that goes with the current one: the same description, else the same modality, else the first. */
  private bestSeries(): SeriesEntry | undefined {
    const current = this.mainLoader.series.find(s => s.uid === this.main.stack()[0]?.seriesUid)
    const same = (a: string, b: string): boolean => a.trim().toUpperCase() === b.trim().toUpperCase()
    return (
      this.loader.series.find(s => current !== undefined && same(s.description, current.description)) ??
      this.loader.series.find(s => current !== undefined && same(s.modality, current.modality)) ??
      this.loader.series[0]
    )
  }

  private async refresh(): Promise<void> {
    let complete = false
    try {
      const [availability, changed] = await Promise.all([
        json<Availability>(`/api/studies/${this.prior.studyInstanceUid}/availability`, { background: true }).catch(
          () => undefined
        ),
        this.loader.refresh()
      ])
      complete = availability?.complete === true && !changed
      if (changed && !this.closed) {
        clear(
          this.seriesSelect,
          ...this.loader.series.map(s =>
            h('option', { value: s.uid }, `${s.number} ${s.modality} ${s.description} (${s.images.length})`)
          )
        )
        const active = this.loader.series.find(s => s.uid === this.activeSeries) ?? this.bestSeries()
        if (active !== undefined) this.showSeries(active)
      }
    } catch {}
    if (!this.closed && !complete)
      this.timer = setTimeout(() => {
        void this.refresh()
      }, REFRESH_MS)
  }
}
