/**
 * Command-line parsing on `node:util` parseArgs, with the errors radmesh prints for bad usage.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { isRole, type Role } from '../../protocol/ids.ts'
import { UsageError } from '../errors.ts'

type Options = NonNullable<ParseArgsConfig['options']>

export function parse<T extends Options>(
  argv: string[],
  options: T,
  usage: string,
  allowPositionals = false
): { values: Record<string, string | string[] | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals, strict: true })
    return { values: values as Record<string, string | string[] | boolean | undefined>, positionals }
  } catch (error) {
    throw new UsageError(`${(error as Error).message.replace(/\. To specify.*$/s, '')}; usage: ${usage}`)
  }
}

export function required(values: Record<string, unknown>, name: string, usage: string): string {
  const value = values[name]
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required; usage: ${usage}`)
  return value
}

export function optional(values: Record<string, unknown>, name: string): string | undefined {
  const value = values[name]
  return typeof value === 'string' ? value : undefined
}

export function list(values: Record<string, unknown>, name: string): string[] {
  const value = values[name]
  return Array.isArray(value) ? value.map(String) : typeof value === 'string' ? [value] : []
}

export function role(value: string): Role {
  if (!isRole(value)) throw new UsageError(`--role ${value}: a member is either "site" or "radiologist"`)
  return value
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "90d", "12h", "30m", "5s" -> milliseconds */
export function duration(value: string, flag: string): number {
  const match = /^(\d+)([smhd])$/.exec(value)
  if (match?.[1] === undefined || match[2] === undefined)
    throw new UsageError(`${flag} ${value}: write a number and a unit, e.g. 365d, 12h, 30m, 5s`)
  const ms = Number(match[1]) * (UNITS[match[2]] as number)
  if (ms <= 0) throw new UsageError(`${flag} must be more than zero`)
  return ms
}
