/**
 * A site's routing: which subspecialty and priority a stable study gets, and when its case is due.
 * Rules are tried in order; for each of subspecialty and priority the first rule that matches and sets it
 * wins. A rule matches when every condition it has matches: `modality` (any of the study's modalities),
 * `bodyPart` and `description` (case-insensitive regular expressions on Body Part Examined and Study
 * Description). The site can replace the rules and due times in HOME/routing.json (same shape), and name
 * its PACS ("pacs": "AE@HOST:PORT", queried for each case's priors; `start --pacs` wins over it) with the rule
 * that picks the priors ("priors": prior-rule.ts).
 */
import { promises as fs } from 'node:fs'
import { PRIORITIES, type Priority } from '../../protocol/collab/records.ts'
import { HomeError } from '../errors.ts'
import { type DicomDestination, parseDestination } from '../dicom/peers.ts'
import { criticalSettings, type CriticalSettings, DEFAULT_CRITICAL_SETTINGS } from './critical.ts'
import { DEFAULT_PRIOR_RULE, type PriorRule, priorRuleOf } from './prior-rule.ts'

export interface RoutingRule {
  modality?: string[]
  bodyPart?: string
  description?: string
  subspecialty?: string
  priority?: Priority
}
export interface RoutingConfig {
  rules: RoutingRule[]
  /** minutes from case creation to due, per priority */
  dueMinutes: Record<Priority, number>
  defaultSubspecialty: string
  defaultPriority: Priority
  /** critical results: minutes to acknowledge per level, and the call list (critical.ts) */
  critical: CriticalSettings
  /** the site's RIS, HOST:PORT: reports go to it as HL7 ORU^R01 over MLLP (`start --ris` wins over it) */
  ris?: string
  /** the site's PACS, queried for each new case's priors (`start --pacs` wins over it); written AE@HOST:PORT */
  pacs?: DicomDestination
  /** which of the patient's earlier studies are a case's priors */
  priors: PriorRule
}

/** Published targets: STAT within the hour, URGENT 4 h, ROUTINE 24 h. */
export const DEFAULT_ROUTING: RoutingConfig = {
  rules: [
    { description: 'stroke|\\bcva\\b|\\btia\\b|hemorrhage|haemorrhage|\\bich\\b|code', priority: 'STAT' },
    { description: 'trauma|dissection|embol|\\bpe\\b', priority: 'STAT' },
    { description: 'urgent|emergency|\\bed\\b|\\ber\\b', priority: 'URGENT' },
    { bodyPart: 'head|brain|skull|neck|spine|orbit', subspecialty: 'neuro' },
    { description: 'head|brain|neuro|stroke|spine', subspecialty: 'neuro' },
    { modality: ['MG'], subspecialty: 'breast' },
    { bodyPart: 'chest|lung|thorax', subspecialty: 'chest' },
    { bodyPart: 'knee|shoulder|hip|ankle|wrist|hand|foot|elbow|extremity', subspecialty: 'msk' },
    { bodyPart: 'abdomen|pelvis|liver|kidney', subspecialty: 'body' }
  ],
  dueMinutes: { STAT: 60, URGENT: 240, ROUTINE: 1440 },
  defaultSubspecialty: 'general',
  defaultPriority: 'ROUTINE',
  critical: DEFAULT_CRITICAL_SETTINGS,
  priors: DEFAULT_PRIOR_RULE
}

export interface StudyFacts {
  modalities: string[]
  bodyPart: string
  description: string
}

/**
 * The most of Body Part Examined (CS, 16 characters) and Study Description (LO, 64) a rule's pattern is tried on.
 * The patterns are the site's own, but the text comes from whoever sent the study: a value of megabytes must
 * not make even a pattern that backtracks take long.
 */
export const MAX_ROUTED_TEXT_CHARS = 128

/** Each rule's patterns, compiled once per rule. */
const compiledRules = new WeakMap<RoutingRule, { bodyPart?: RegExp; description?: RegExp }>()

function patternsOf(rule: RoutingRule): { bodyPart?: RegExp; description?: RegExp } {
  let patterns = compiledRules.get(rule)
  if (patterns === undefined) {
    patterns = {
      ...(rule.bodyPart === undefined ? {} : { bodyPart: new RegExp(rule.bodyPart, 'i') }),
      ...(rule.description === undefined ? {} : { description: new RegExp(rule.description, 'i') })
    }
    compiledRules.set(rule, patterns)
  }
  return patterns
}

export function route(
  facts: StudyFacts,
  config: RoutingConfig = DEFAULT_ROUTING
): { subspecialty: string; priority: Priority } {
  let subspecialty: string | undefined
  let priority: Priority | undefined
  const bodyPart = facts.bodyPart.slice(0, MAX_ROUTED_TEXT_CHARS)
  const description = facts.description.slice(0, MAX_ROUTED_TEXT_CHARS)
  for (const rule of config.rules) {
    if (rule.modality !== undefined && !rule.modality.some(m => facts.modalities.includes(m))) continue
    const patterns = patternsOf(rule)
    if (patterns.bodyPart !== undefined && !patterns.bodyPart.test(bodyPart)) continue
    if (patterns.description !== undefined && !patterns.description.test(description)) continue
    subspecialty ??= rule.subspecialty
    priority ??= rule.priority
  }
  return { subspecialty: subspecialty ?? config.defaultSubspecialty, priority: priority ?? config.defaultPriority }
}

/** HOME/routing.json if there is one, checked, else the defaults. */
export async function loadRouting(path: string): Promise<RoutingConfig> {
  let text: string
  try {
    text = await fs.readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return DEFAULT_ROUTING
    throw error
  }
  const bad = (why: string): Error =>
    new HomeError('RADMESH_HOME_CORRUPT', `${path}: ${why}; fix it or remove it to use the default routing`)
  let value: Partial<Omit<RoutingConfig, 'pacs'>> & { pacs?: unknown }
  try {
    value = JSON.parse(text) as typeof value
  } catch {
    throw bad('not JSON')
  }
  const { pacs, ...rest } = value
  const config: RoutingConfig = {
    ...DEFAULT_ROUTING,
    ...rest,
    dueMinutes: { ...DEFAULT_ROUTING.dueMinutes, ...value.dueMinutes }
  }
  if (pacs !== undefined) {
    if (typeof pacs !== 'string') throw bad('"pacs" must be "AE@HOST:PORT", e.g. "PACS@pacs.hospital.local:104"')
    try {
      config.pacs = parseDestination(pacs)
    } catch (error) {
      throw bad(`"pacs" ${(error as Error).message.replace('write AE=HOST:PORT', 'write AE@HOST:PORT')}`)
    }
  }
  const priors = priorRuleOf(value.priors)
  if (typeof priors === 'string') throw bad(priors)
  config.priors = priors
  if (!Array.isArray(config.rules)) throw bad('"rules" must be a list')
  for (const [i, rule] of config.rules.entries()) {
    if (rule.priority !== undefined && !PRIORITIES.includes(rule.priority)) {
      throw bad(`rules[${i}].priority must be one of ${PRIORITIES.join(', ')}`)
    }
    for (const pattern of [rule.bodyPart, rule.description]) {
      try {
        if (pattern !== undefined) new RegExp(pattern, 'i')
      } catch {
        throw bad(`rules[${i}] has a pattern that is not a regular expression: ${pattern}`)
      }
    }
    if (rule.subspecialty !== undefined && !/^[a-z0-9-]{1,32}$/.test(rule.subspecialty)) {
      throw bad(`rules[${i}].subspecialty must be a lower-case code`)
    }
  }
  if (config.ris !== undefined && !/^[^\s:]+:\d{1,5}$/.test(config.ris)) throw bad('"ris" must be HOST:PORT')
  const critical = criticalSettings(value.critical)
  if (typeof critical === 'string') throw bad(critical)
  config.critical = critical
  for (const priority of PRIORITIES) {
    if (!(config.dueMinutes[priority] > 0)) throw bad(`dueMinutes.${priority} must be a positive number of minutes`)
  }
  return config
}

/** Due time of a case created at `createdAt` with `priority`. */
export function dueAt(createdAt: Date, priority: Priority, dueMinutes: Record<Priority, number>): string {
  return new Date(createdAt.getTime() + dueMinutes[priority] * 60_000).toISOString()
}
