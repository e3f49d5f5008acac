/**
 * How the HTTP server checks what a request carries against its route's schema (TypeBox's compiler). A body is
 * checked as sent: JSON has types, and `{ "text": 5 }` is not text. Path and query parameters arrive as text,
 * so a number is read from text that is wholly a decimal number first (`1.5` stays 1.5 and fails an integer,
 * `1e3` and `12abc` stay text and fail a number), and `true`/`false` become booleans; nothing else changes.
 * (fastify's ajv coerces bodies too, and TypeBox's own `Value.Convert` truncates `1.5` to 1 and cannot
 * handle a parameter named `*`.)
 */
import type { FastifySchemaCompiler } from 'fastify'
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'

const DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/

interface SchemaShape {
  type?: unknown
  properties?: Record<string, SchemaShape>
}

/** A parameter's text as the type its schema names, when it is wholly that type; else the text unchanged. */
function fromText(schema: SchemaShape | undefined, value: unknown): unknown {
  if (typeof value !== 'string' || schema === undefined) return value
  if ((schema.type === 'integer' || schema.type === 'number') && DECIMAL.test(value)) return Number(value)
  if (schema.type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true'
  return value
}

function parameters(schema: SchemaShape, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || schema.properties === undefined) return value
  const converted: Record<string, unknown> = {}
  for (const [name, text] of Object.entries(value)) converted[name] = fromText(schema.properties[name], text)
  return converted
}

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const validator = Compile(schema)
  return (value: unknown) => {
    const converted = httpPart === 'body' ? value : parameters(schema as SchemaShape, value)
    if (validator.Check(converted)) return { value: converted }
    return { error: validator.Errors(converted) as never }
  }
}
