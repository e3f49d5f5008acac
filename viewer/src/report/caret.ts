/**
 * Where a character of a textarea is drawn, found with a hidden twin of the textarea styled alike: the report
 * panel (panel.ts) places the other readers' carets with it.
 */

/** Styles that decide where text falls in a textarea, copied to a hidden twin to find a character's place. */
const MIRRORED = [
  'boxSizing',
  'width',
  'paddingTop',
  'paddingRight',
  'paddingBottom',
  'paddingLeft',
  'borderTopWidth',
  'borderRightWidth',
  'borderBottomWidth',
  'borderLeftWidth',
  'fontFamily',
  'fontSize',
  'fontWeight',
  'fontStyle',
  'lineHeight',
  'letterSpacing',
  'wordSpacing',
  'textIndent',
  'tabSize'
] as const

/** Where character `index` of a textarea is drawn, relative to the textarea's corner (scrolling included). */
export function caretPoint(area: HTMLTextAreaElement, index: number): { left: number; top: number; height: number } {
  const style = getComputedStyle(area)
  const mirror = document.createElement('div')
  for (const property of MIRRORED) mirror.style[property] = style[property]
  mirror.style.position = 'absolute'
  mirror.style.visibility = 'hidden'
  mirror.style.whiteSpace = 'pre-wrap'
  mirror.style.overflowWrap = 'break-word'
  mirror.style.left = '-10000px'
  mirror.style.top = '0'
  mirror.textContent = area.value.slice(0, index)
  const marker = document.createElement('span')
  marker.textContent = area.value.slice(index) || '.'
  mirror.append(marker)
  document.body.append(mirror)
  const point = {
    left: marker.offsetLeft - area.scrollLeft,
    top: marker.offsetTop - area.scrollTop,
    height: Number.parseFloat(style.lineHeight) || 20
  }
  mirror.remove()
  return point
}
