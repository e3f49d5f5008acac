/**
 * Which of a patient's earlier studies in the site's PACS are priors of a new case: the rule a site sets in
 * HOME/routing.json under "priors", and the choice it makes.
 *
 *   "priors": { "sameModality": true, "sameBodyPart": true, "max": 3, "withinYears": 5, "retrieve": "get" }
 *
 * A study is a prior when it is not the case's study, is dated on or before it and no more than `withinYears`
 * before it (a study without a date cannot be placed, so it is left out), shares a modality with it
 * (`sameModality`) and was of the same body part (`sameBodyPart`: Body Part Examined of any of its series,
 * compared without case; a case whose study names no body part compares modality and date only). The newest
 * `max` are taken, newest first. They are retrieved by C-GET, or by C-MOVE to the node's own AE title
 * (`"retrieve": "move"`) from a PACS that offers no C-GET: it must know the node's DICOM port (`--dicom`).
 */

export interface PriorRule {
  sameModality: boolean
  sameBodyPart: boolean
  /** the most priors a case gets */
  max: number
  /** how far back a prior may be, in years before the case's study */
  withinYears: number
  /** how the priors are retrieved: C-GET on the node's own association, or C-MOVE to the node's DICOM port */
  retrieve: 'get' | 'move'
}

/** Three priors of up to five years: what a radiologist compares a follow-up CT or MR with. */
export const DEFAULT_PRIOR_RULE: PriorRule = {
  sameModality: true,
  sameBodyPart: true,
  max: 3,
  withinYears: 5,
  retrieve: 'get'
}
/** A case carries at most this many priors, whatever the rule asks (each is a study the readers fetch). */
export const MAX_PRIORS = 20

/** What the rule looks at in the case's own study. */
export interface CurrentStudy {
  studyInstanceUid: string
  /** DICOM DA, '' when the study has none (then the day the case is made stands for it) */
  studyDate: string
  modalities: string[]
  bodyPart: string
}

/** A study of the patient the PACS found. */
export interface PriorCandidate {
  studyInstanceUid: string
  studyDate: string
  studyDescription: string
  modalities: string[]
  /** Body Part Examined of its series ('' ones left out) */
  bodyParts: string[]
  accessionNumber: string
  instances: number
}

/** A DICOM DA (YYYYMMDD) as a UTC day, or undefined when it is not one. */
export function dayOf(date: string): Date | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(date.trim())
  if (match === null) return undefined
  const day = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])))
  return Number.isNaN(day.getTime()) || day.getUTCDate() !== Number(match[3]) ? undefined : day
}

/** A day as DICOM DA. */
export const daOf = (day: Date): string => day.toISOString().slice(0, 10).replaceAll('-', '')

/** The earliest day a prior of a study of `current` may be from, under `rule`. */
export function earliestPriorDay(current: Date, rule: PriorRule): Date {
  const earliest = new Date(current)
  const years = Math.floor(rule.withinYears)
  earliest.setUTCFullYear(earliest.getUTCFullYear() - years)
  // A part of a year (1.5) in days; the whole years by the calendar, so "5" from 2026-03-01 is 2021-03-01.
  return new Date(earliest.getTime() - Math.round((rule.withinYears - years) * 365.25) * 86_400_000)
}

const norm = (text: string): string => text.trim().toUpperCase()

/** The priors among `candidates`, newest first, at most `rule.max`. */
export function choosePriors(
  current: CurrentStudy,
  candidates: readonly PriorCandidate[],
  rule: PriorRule,
  now = new Date()
): PriorCandidate[] {
  const today = dayOf(current.studyDate) ?? dayOf(daOf(now)) ?? now
  const earliest = earliestPriorDay(today, rule)
  const modalities = new Set(current.modalities.map(norm))
  const bodyPart = norm(current.bodyPart)
  return candidates
    .filter(candidate => {
      if (candidate.studyInstanceUid === current.studyInstanceUid) return false
      const day = dayOf(candidate.studyDate)
      if (day === undefined || day > today || day < earliest) return false
      if (rule.sameModality && !candidate.modalities.some(m => modalities.has(norm(m)))) return false
      if (rule.sameBodyPart && bodyPart !== '' && !candidate.bodyParts.some(b => norm(b) === bodyPart)) return false
      return true
    })
    .sort((a, b) =>
      a.studyDate !== b.studyDate
        ? a.studyDate < b.studyDate
          ? 1
          : -1
        : a.studyInstanceUid < b.studyInstanceUid
          ? -1
          : 1
    )
    .slice(0, Math.min(rule.max, MAX_PRIORS))
}

/** routing.json's "priors", checked: the rule, or a message saying what is wrong. */
export function priorRuleOf(value: unknown): PriorRule | string {
  if (value === undefined) return DEFAULT_PRIOR_RULE
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return '"priors" must be an object, e.g. { "sameModality": true, "sameBodyPart": true, "max": 3, "withinYears": 5 }'
  const given = value as Record<string, unknown>
  const unknown = Object.keys(given).filter(key => !(key in DEFAULT_PRIOR_RULE))
  if (unknown.length > 0)
    return `"priors" has ${unknown.map(k => `"${k}"`).join(', ')}, which it does not know (it takes sameModality, sameBodyPart, max, withinYears, retrieve)`
  const rule = { ...DEFAULT_PRIOR_RULE, ...given } as PriorRule
  for (const key of ['sameModality', 'sameBodyPart'] as const)
    if (typeof rule[key] !== 'boolean') return `priors.${key} must be true or false`
  if (!Number.isInteger(rule.max) || rule.max < 0 || rule.max > MAX_PRIORS)
    return `priors.max must be a whole number from 0 (no priors) to ${MAX_PRIORS}`
  if (typeof rule.withinYears !== 'number' || !(rule.withinYears > 0) || rule.withinYears > 100)
    return 'priors.withinYears must be a number of years above 0 and at most 100'
  if (rule.retrieve !== 'get' && rule.retrieve !== 'move')
    return 'priors.retrieve must be "get" (C-GET, the default) or "move" (C-MOVE to this node\'s --dicom port)'
  return rule
}
