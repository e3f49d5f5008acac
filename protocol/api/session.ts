/**
 * The viewer's session: `GET /signin/:code` spends a one-time code and sets the session cookie;
 * `GET /api/session` says who is signed in; `POST /api/signin-links` (API token only) makes a one-time link;
 * `POST /api/signout` ends the session (204).
 */
import { type Static, Type } from 'typebox'
import { Nullable } from './common.ts'

export const Session = Type.Object({
  /** 'viewer' (a browser session) or 'api' (the API token) */
  actor: Type.String(),
  /** the automatic logoff of a viewer session; null for the API token */
  idleTimeoutMs: Nullable(Type.Integer()),
  name: Type.String(),
  role: Type.Enum(['site', 'radiologist']),
  subspecialties: Type.Array(Type.String()),
  peerId: Type.String()
})
export type Session = Static<typeof Session>

export const SignInLink = Type.Object({ url: Type.String() })
export type SignInLink = Static<typeof SignInLink>

/** A one-time sign-in code (base64url). */
export const SignInParams = Type.Object({ code: Type.String({ maxLength: 100 }) })
