/**
 * A progress bar on stderr for long operations: count, bytes, rate and time left, redrawn at most 10 times
 * a second on a terminal, and a plain line every 10 % otherwise (logs, CI).
 */
export class Progress {
  private readonly label: string
  private readonly total: number
  private readonly totalBytes: number
  private readonly unit: string
  private readonly started = Date.now()
  private readonly tty = process.stderr.isTTY === true
  private count = 0
  private bytes = 0
  private lastDraw = 0
  private lastDecile = -1

  constructor(label: string, total: number, totalBytes: number, unit = 'files') {
    this.label = label
    this.total = total
    this.totalBytes = totalBytes
    this.unit = unit
  }

  /** Progress reported as totals so far (e.g. polled from the node). */
  set(count: number, bytes: number): void {
    if (count === this.count && bytes === this.bytes) return
    this.count = count
    this.bytes = bytes
    this.draw(false)
  }

  advance(bytes: number): void {
    this.count++
    this.bytes += bytes
    this.draw(false)
  }

  /** A line above the bar (e.g. a refused file). */
  log(line: string): void {
    if (this.tty) process.stderr.write('\r\x1b[K')
    process.stderr.write(`${line}\n`)
    this.draw(true)
  }

  done(): void {
    this.draw(true)
    if (this.tty) process.stderr.write('\n')
  }

  private draw(force: boolean): void {
    const now = Date.now()
    const fraction = this.total === 0 ? 1 : this.count / this.total
    const seconds = (now - this.started) / 1000
    const rate = seconds > 0 ? this.bytes / seconds / 1e6 : 0
    const left = fraction > 0 && fraction < 1 ? Math.round(seconds / fraction - seconds) : 0
    const text =
      `${this.label} ${this.count}/${this.total} ${this.unit}, ` +
      `${(this.bytes / 1e6).toFixed(1)}/${(this.totalBytes / 1e6).toFixed(1)} MB, ` +
      `${rate.toFixed(1)} MB/s${left > 0 ? `, ${left}s left` : ''}`
    if (this.tty) {
      if (!force && now - this.lastDraw < 100 && this.count < this.total) return
      this.lastDraw = now
      const width = 24
      const filled = Math.round(fraction * width)
      process.stderr.write(
        `\r\x1b[K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(fraction * 100)}% ${text}`
      )
      return
    }
    const decile = Math.floor(fraction * 10)
    if (decile !== this.lastDecile && decile > this.lastDecile) {
      this.lastDecile = decile
      process.stderr.write(`${Math.round(fraction * 100)}% ${text}\n`)
    }
  }
}
