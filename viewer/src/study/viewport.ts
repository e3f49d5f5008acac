/**
 * The image on screen: a stack of images of one series, drawn on a canvas through the DICOM display
 * pipeline (image/render.ts), with the reading-station controls:
 *
 *   wheel, ↑ ↓, PgUp PgDn (10), Home End   scroll the stack
 *   drag                                     window/level (right: wider, down: brighter… as on PACS)
 *   Shift+drag or middle drag                pan;  Ctrl+wheel or + -  zoom;  R  reset
 *   1-7                                      CT presets (brain, subdural, stroke, lung, mediastinum, bone,
 *                                            abdomen); 0 the file's window
 *   M                                        measure: drag a line, its length in mm (Pixel Spacing)
 */
import { h } from '../dom.ts'
import { defaultWindow, isColour, renderFrame, type Window } from '../image/render.ts'
import type { Image, LoadedImage, StudyLoader } from './loader.ts'

export const PRESETS: Array<{ key: string; name: string; window: Window }> = [
  { key: '1', name: 'Brain', window: { center: 40, width: 80 } },
  { key: '2', name: 'Subdural', window: { center: 75, width: 215 } },
  { key: '3', name: 'Stroke', window: { center: 40, width: 40 } },
  { key: '4', name: 'Lung', window: { center: -600, width: 1500 } },
  { key: '5', name: 'Mediastinum', window: { center: 50, width: 350 } },
  { key: '6', name: 'Bone', window: { center: 400, width: 1800 } },
  { key: '7', name: 'Abdomen', window: { center: 40, width: 400 } }
]

interface Line {
  x1: number
  y1: number
  x2: number
  y2: number
}

export interface ViewportState {
  index: number
  count: number
  window: Window | undefined
  zoom: number
  pan: [number, number]
  measuring: boolean
  drawn: number
  lastDrawMs: number
}

export class Viewport {
  readonly element: HTMLDivElement
  private readonly canvas: HTMLCanvasElement
  private readonly offscreen = document.createElement('canvas')
  private readonly overlays: Record<'tl' | 'tr' | 'bl' | 'br', HTMLDivElement>
  private readonly status: HTMLDivElement
  private readonly loader: StudyLoader
  private images: Image[] = []
  private index = 0
  private window: Window | undefined
  private windowName = ''
  private zoom = 1
  private pan: [number, number] = [0, 0]
  private measuring = false
  private readonly lines = new Map<string, Line[]>()
  private drawing: Line | undefined
  private shown: { image: Image; loaded: LoadedImage } | undefined
  private imageData: ImageData | undefined
  private drawn = 0
  private lastDrawMs = 0
  private pending = 0
  private label = ''
  onImageChange: (image: Image, loaded: LoadedImage) => void = () => {}
  /** the stack position changed (scrolling, keys, a linked viewport), before the image is loaded */
  onIndexChange: (index: number) => void = () => {}
  /** the reader changed the window (drag, preset, reset) */
  onWindowChange: (window: Window, name: string) => void = () => {}

  /**
   * `id`: the element's id; the main viewport is "viewport" (its parts "image", "viewport-status", "overlay-tr",
   * "overlay-br"), a second one (a prior beside it) names its parts after its own id ("prior-viewport-image" …).
   */
  constructor(loader: StudyLoader, options: { id?: string } = {}) {
    const id = options.id ?? 'viewport'
    const part = (name: string, main: string): string => (id === 'viewport' ? main : `${id}-${name}`)
    this.loader = loader
    this.canvas = h('canvas', { class: 'image', id: part('image', 'image') })
    this.status = h('div', { class: 'status', id: part('status', 'viewport-status') }, 'Waiting for images…')
    this.overlays = {
      tl: h('div', { class: 'overlay tl', id: part('overlay-tl', 'overlay-tl') }),
      tr: h('div', { class: 'overlay tr', id: part('overlay-tr', 'overlay-tr') }),
      bl: h('div', { class: 'overlay bl', id: part('overlay-bl', 'overlay-bl') }),
      br: h('div', { class: 'overlay br', id: part('overlay-br', 'overlay-br') })
    }
    this.element = h(
      'div',
      { class: 'viewport', tabindex: 0, id },
      this.canvas,
      this.status,
      ...Object.values(this.overlays)
    )
    this.listen()
    new ResizeObserver(() => {
      this.draw()
    }).observe(this.element)
  }

  /** Shows a series (or the same series with more images, keeping the position). */
  setImages(images: Image[], label: string): void {
    const same = this.images[0]?.seriesUid === images[0]?.seriesUid
    const current = this.images[this.index]
    this.images = images
    this.label = label
    if (!same) {
      this.index = 0
      this.window = undefined
      this.zoom = 1
      this.pan = [0, 0]
      this.onIndexChange(0)
    } else if (current !== undefined) {
      this.index = Math.max(
        0,
        images.findIndex(i => i.sopUid === current.sopUid && i.frame === current.frame)
      )
    }
    void this.show(this.index)
  }

  state(): ViewportState {
    return {
      index: this.index,
      count: this.images.length,
      window: this.window,
      zoom: this.zoom,
      pan: [...this.pan],
      measuring: this.measuring,
      drawn: this.drawn,
      lastDrawMs: this.lastDrawMs
    }
  }

  /** The images of the stack on screen, in order. */
  stack(): readonly Image[] {
    return this.images
  }

  /** The rendered frame at its own size (what the canvas shows, before zoom), for checks. */
  frameImageData(): ImageData | undefined {
    return this.imageData
  }

  async show(index: number): Promise<void> {
    if (this.images.length === 0) return
    const before = this.index
    this.index = Math.min(this.images.length - 1, Math.max(0, index))
    if (this.index !== before) this.onIndexChange(this.index)
    const image = this.images[this.index] as Image
    const ticket = ++this.pending
    if (!this.loader.isLoaded(image)) this.status.textContent = 'Loading…'
    let loaded: LoadedImage
    try {
      loaded = await this.loader.load(image, true)
    } catch (error) {
      if (ticket === this.pending) this.status.textContent = `Cannot show this image: ${(error as Error).message}`
      this.element.dataset['error'] = (error as Error).message
      return
    }
    if (ticket !== this.pending) return
    this.status.textContent = ''
    delete this.element.dataset['error']
    if (this.window === undefined) {
      this.window = defaultWindow(loaded.frame, loaded.info)
      this.windowName = loaded.info.windows[0]?.explanation ?? ''
    }
    this.shown = { image, loaded }
    this.render()
    this.onImageChange(image, loaded)
    this.prefetch()
  }

  /** Loads the next images in the background, nearest first, so scrolling does not wait. */
  private prefetch(): void {
    for (let step = 1; step <= 8; step++) {
      for (const i of [this.index + step, this.index - step]) {
        const image = this.images[i]
        if (image !== undefined && !this.loader.isLoaded(image)) void this.loader.load(image).catch(() => {})
      }
    }
  }

  /** Sets the window (undefined: the file's own); before the first image is shown, a given window waits for it. */
  setWindow(window: Window | undefined, name = ''): void {
    if (this.shown === undefined) {
      if (window === undefined) return
      this.window = { ...window }
      this.windowName = name
      return
    }
    this.window = window ?? defaultWindow(this.shown.loaded.frame, this.shown.loaded.info)
    this.windowName = window === undefined ? (this.shown.loaded.info.windows[0]?.explanation ?? '') : name
    this.render()
    this.onWindowChange(this.window, this.windowName)
  }

  reset(): void {
    this.zoom = 1
    this.pan = [0, 0]
    this.setWindow(undefined)
  }

  private render(): void {
    if (this.shown === undefined || this.window === undefined) return
    const started = performance.now()
    const { info, frame } = this.shown.loaded
    if (this.offscreen.width !== info.columns || this.offscreen.height !== info.rows) {
      this.offscreen.width = info.columns
      this.offscreen.height = info.rows
      this.imageData = undefined
    }
    this.imageData ??= new ImageData(info.columns, info.rows)
    renderFrame(frame, info, this.window, this.imageData.data)
    ;(this.offscreen.getContext('2d') as CanvasRenderingContext2D).putImageData(this.imageData, 0, 0)
    this.draw()
    this.lastDrawMs = performance.now() - started
    this.drawn++
    this.element.dataset['drawn'] = String(this.drawn)
  }

  /** Where the image sits on the canvas: scale and offset (CSS pixels). */
  private placement(): { scale: number; x: number; y: number } {
    const { width, height } = this.canvas
    const ratio = window.devicePixelRatio || 1
    const fit = Math.min(width / this.offscreen.width, height / this.offscreen.height) || 1
    const scale = fit * this.zoom
    return {
      scale,
      x: (width - this.offscreen.width * scale) / 2 + this.pan[0] * ratio,
      y: (height - this.offscreen.height * scale) / 2 + this.pan[1] * ratio
    }
  }

  private draw(): void {
    const ratio = window.devicePixelRatio || 1
    const width = Math.max(1, Math.round(this.element.clientWidth * ratio))
    const height = Math.max(1, Math.round(this.element.clientHeight * ratio))
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width
      this.canvas.height = height
    }
    const context = this.canvas.getContext('2d') as CanvasRenderingContext2D
    context.setTransform(1, 0, 0, 1, 0, 0)
    context.fillStyle = '#000'
    context.fillRect(0, 0, width, height)
    if (this.shown === undefined) return
    const { scale, x, y } = this.placement()
    context.imageSmoothingEnabled = scale < 1
    context.drawImage(this.offscreen, x, y, this.offscreen.width * scale, this.offscreen.height * scale)
    const key = `${this.shown.image.sopUid}#${this.shown.image.frame}`
    const lines = [...(this.lines.get(key) ?? []), ...(this.drawing === undefined ? [] : [this.drawing])]
    context.strokeStyle = '#ffd54a'
    context.fillStyle = '#ffd54a'
    context.lineWidth = 1.5 * ratio
    context.font = `${12 * ratio}px system-ui, sans-serif`
    for (const line of lines) {
      const a = [x + line.x1 * scale, y + line.y1 * scale] as const
      const b = [x + line.x2 * scale, y + line.y2 * scale] as const
      context.beginPath()
      context.moveTo(...a)
      context.lineTo(...b)
      context.stroke()
      context.fillText(this.lengthText(line), b[0] + 6 * ratio, b[1])
    }
    this.overlays.tl.textContent = `${this.label}\nImage ${this.index + 1} / ${this.images.length}`
    const w = this.window
    const colour = isColour(this.shown.loaded.info)
    this.overlays.tr.textContent =
      colour || w === undefined
        ? ''
        : `W ${Math.round(w.width)}  L ${Math.round(w.center)}${this.windowName === '' ? '' : `  ${this.windowName}`}`
    this.overlays.br.textContent = `Zoom ${(scale / ratio).toFixed(2)}x${this.measuring ? '\nMeasure (M)' : ''}`
  }

  /** A line's length in mm (Pixel Spacing: row spacing, column spacing), or in pixels when the file has none. */
  lengthText(line: Line): string {
    const spacing = this.shown?.loaded.info.pixelSpacing
    const dx = line.x2 - line.x1
    const dy = line.y2 - line.y1
    if (spacing === undefined) return `${Math.hypot(dx, dy).toFixed(1)} px`
    return `${Math.hypot(dx * spacing[1], dy * spacing[0]).toFixed(1)} mm`
  }

  /** Canvas point (CSS pixels from the canvas corner) to image pixel coordinates. */
  private toImage(clientX: number, clientY: number): [number, number] {
    const rect = this.canvas.getBoundingClientRect()
    const ratio = window.devicePixelRatio || 1
    const { scale, x, y } = this.placement()
    return [((clientX - rect.left) * ratio - x) / scale, ((clientY - rect.top) * ratio - y) / scale]
  }

  private listen(): void {
    this.element.addEventListener(
      'wheel',
      event => {
        event.preventDefault()
        if (event.ctrlKey) this.zoomBy(event.deltaY < 0 ? 1.15 : 1 / 1.15)
        else void this.show(this.index + Math.sign(event.deltaY))
      },
      { passive: false }
    )
    this.element.addEventListener('keydown', event => {
      const presets = PRESETS.find(p => p.key === event.key)
      if (presets !== undefined) this.setWindow(presets.window, presets.name)
      else if (event.key === '0') this.setWindow(undefined)
      else if (event.key === 'ArrowDown' || event.key === 'ArrowRight') void this.show(this.index + 1)
      else if (event.key === 'ArrowUp' || event.key === 'ArrowLeft') void this.show(this.index - 1)
      else if (event.key === 'PageDown') void this.show(this.index + 10)
      else if (event.key === 'PageUp') void this.show(this.index - 10)
      else if (event.key === 'Home') void this.show(0)
      else if (event.key === 'End') void this.show(this.images.length - 1)
      else if (event.key === '+' || event.key === '=') this.zoomBy(1.25)
      else if (event.key === '-') this.zoomBy(0.8)
      else if (event.key === 'r' || event.key === 'R') this.reset()
      else if (event.key === 'm' || event.key === 'M') {
        this.measuring = !this.measuring
        this.draw()
      } else return
      event.preventDefault()
    })
    let drag:
      | { x: number; y: number; mode: 'window' | 'pan' | 'measure'; window: Window | undefined; pan: [number, number] }
      | undefined
    this.element.addEventListener('pointerdown', event => {
      this.element.focus()
      const mode =
        this.measuring && event.button === 0 && !event.shiftKey
          ? 'measure'
          : event.button === 1 || event.shiftKey
            ? 'pan'
            : 'window'
      drag = {
        x: event.clientX,
        y: event.clientY,
        mode,
        window: this.window === undefined ? undefined : { ...this.window },
        pan: [...this.pan]
      }
      if (mode === 'measure') {
        const [x, y] = this.toImage(event.clientX, event.clientY)
        this.drawing = { x1: x, y1: y, x2: x, y2: y }
      }
      this.element.setPointerCapture(event.pointerId)
    })
    this.element.addEventListener('pointermove', event => {
      if (drag === undefined) return
      const dx = event.clientX - drag.x
      const dy = event.clientY - drag.y
      if (drag.mode === 'pan') {
        this.pan = [drag.pan[0] + dx, drag.pan[1] + dy]
        this.draw()
      } else if (drag.mode === 'measure' && this.drawing !== undefined) {
        const [x, y] = this.toImage(event.clientX, event.clientY)
        this.drawing = { ...this.drawing, x2: x, y2: y }
        this.draw()
      } else if (drag.window !== undefined && this.shown !== undefined && !isColour(this.shown.loaded.info)) {
        // Sensitivity follows the width, so fine windows stay controllable.
        const step = Math.max(1, drag.window.width / 256)
        this.window = { center: drag.window.center + dy * step, width: Math.max(1, drag.window.width + dx * step * 2) }
        this.windowName = ''
        this.render()
        this.onWindowChange(this.window, '')
      }
    })
    const end = (): void => {
      if (drag?.mode === 'measure' && this.drawing !== undefined && this.shown !== undefined) {
        const key = `${this.shown.image.sopUid}#${this.shown.image.frame}`
        if (Math.hypot(this.drawing.x2 - this.drawing.x1, this.drawing.y2 - this.drawing.y1) > 2)
          this.lines.set(key, [...(this.lines.get(key) ?? []), this.drawing])
        this.drawing = undefined
        this.draw()
      }
      drag = undefined
    }
    this.element.addEventListener('pointerup', end)
    this.element.addEventListener('pointercancel', end)
  }

  private zoomBy(factor: number): void {
    this.zoom = Math.min(20, Math.max(0.1, this.zoom * factor))
    this.draw()
  }

  /** Measurements on the image on screen, with their lengths (for checks and the report). */
  measurements(): Array<Line & { text: string }> {
    if (this.shown === undefined) return []
    return (this.lines.get(`${this.shown.image.sopUid}#${this.shown.image.frame}`) ?? []).map(line => ({
      ...line,
      text: this.lengthText(line)
    }))
  }
}
