/**
 * Every failure radmesh reports on purpose, in one table: a stable code, the HTTP status an API answer
 * carries, and the exit code of the CLI. `docs/ERRORS.md` lists the same codes; a test keeps them in step.
 * Messages say what went wrong and what to do about it; tests assert on `code`, never on text.
 */
export const ERROR_TABLE = {
  RADMESH_USAGE: { httpStatus: 400, exitCode: 2, summary: 'the command line is not valid' },
  RADMESH_BAD_REQUEST: { httpStatus: 400, exitCode: 1, summary: 'a request body or parameter is not valid' },
  RADMESH_UNAUTHORIZED: { httpStatus: 401, exitCode: 1, summary: 'missing or wrong API token' },
  RADMESH_NOT_FOUND: { httpStatus: 404, exitCode: 1, summary: 'no such route or object' },
  RADMESH_NOT_ACCEPTABLE: {
    httpStatus: 406,
    exitCode: 1,
    summary: 'the Accept header names no media type this route can answer with'
  },
  RADMESH_REQUEST_TIMEOUT: { httpStatus: 408, exitCode: 1, summary: 'the request did not arrive in full in time' },
  RADMESH_TOO_LARGE: { httpStatus: 413, exitCode: 1, summary: 'a request body, part or object over its size limit' },
  RADMESH_UNSUPPORTED_MEDIA_TYPE: {
    httpStatus: 415,
    exitCode: 1,
    summary: 'a request body of a media type this route does not take'
  },
  RADMESH_HEADERS_TOO_LARGE: { httpStatus: 431, exitCode: 1, summary: 'the request line and headers over their limit' },
  RADMESH_BUSY: {
    httpStatus: 503,
    exitCode: 1,
    summary: 'the node is at one of its limits (connections, requests in flight): try again shortly'
  },
  RADMESH_HOME_MISSING: { httpStatus: 500, exitCode: 1, summary: 'HOME does not exist or was never initialised' },
  RADMESH_HOME_CORRUPT: { httpStatus: 500, exitCode: 1, summary: 'a file in HOME is unreadable or damaged' },
  RADMESH_HOME_EXISTS: { httpStatus: 500, exitCode: 1, summary: 'init would overwrite an existing identity' },
  RADMESH_NOT_JOINED: { httpStatus: 500, exitCode: 1, summary: 'the node has no consortium certificate yet' },
  RADMESH_CONSORTIUM_MISSING: {
    httpStatus: 500,
    exitCode: 1,
    summary: 'the consortium directory is missing or damaged'
  },
  RADMESH_CONSORTIUM_EXISTS: { httpStatus: 500, exitCode: 1, summary: 'create would overwrite an existing consortium' },
  RADMESH_WRONG_CONSORTIUM: {
    httpStatus: 400,
    exitCode: 1,
    summary: 'a certificate or revocation of another consortium'
  },
  RADMESH_CERTIFICATE_INVALID: {
    httpStatus: 400,
    exitCode: 1,
    summary: 'a certificate whose signature or fields do not check out'
  },
  RADMESH_CERTIFICATE_EXPIRED: { httpStatus: 400, exitCode: 1, summary: 'a certificate past its expiry time' },
  RADMESH_REVOKED: { httpStatus: 403, exitCode: 1, summary: 'the member has been revoked' },
  RADMESH_NOT_A_MEMBER: {
    httpStatus: 400,
    exitCode: 1,
    summary: 'a peer id that is not a member this node knows with a valid certificate'
  },
  RADMESH_NOT_A_RECIPIENT: { httpStatus: 403, exitCode: 1, summary: 'this node holds no key for the study' },
  RADMESH_CASE_TAKEN: { httpStatus: 409, exitCode: 1, summary: 'another reader holds the case' },
  RADMESH_CASE_CLOSED: { httpStatus: 409, exitCode: 1, summary: 'the case is completed or canceled' },
  RADMESH_NOT_ALLOWED: { httpStatus: 403, exitCode: 1, summary: 'this member may not do that to the case or report' },
  RADMESH_REPORT_FINAL: {
    httpStatus: 409,
    exitCode: 1,
    summary: 'the report is FINAL: it cannot change, write an addendum'
  },
  RADMESH_REPORT_CHANGED: {
    httpStatus: 409,
    exitCode: 1,
    summary: 'a section changed since its base where the edit changes it: read it again and redo the edit'
  },
  RADMESH_ADDRESS_IN_USE: { httpStatus: 500, exitCode: 1, summary: 'a port to listen on is taken' },
  RADMESH_BAD_MULTIADDR: { httpStatus: 400, exitCode: 2, summary: 'a multiaddr that cannot be parsed or used' },
  RADMESH_INVALID_DICOM: { httpStatus: 400, exitCode: 1, summary: 'a DICOM object that is not valid enough to store' },
  RADMESH_NOT_DEIDENTIFIABLE: {
    httpStatus: 422,
    exitCode: 1,
    summary: 'a study radmesh will not send as a de-identified copy'
  },
  RADMESH_AUDIT_BROKEN: {
    httpStatus: 500,
    exitCode: 3,
    summary: 'the audit trail does not verify: a record was changed, removed or reordered'
  },
  RADMESH_NODE_NOT_RUNNING: {
    httpStatus: 503,
    exitCode: 1,
    summary: 'the command needs the node on HOME to be running'
  },
  RADMESH_INTERNAL: { httpStatus: 500, exitCode: 70, summary: 'a bug: radmesh did not expect this' }
} as const

export type ErrorCode = keyof typeof ERROR_TABLE

/** The base of every error radmesh throws on purpose. */
export class RadmeshError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'RadmeshError'
  }

  get httpStatus(): number {
    return ERROR_TABLE[this.code].httpStatus
  }
  get exitCode(): number {
    return ERROR_TABLE[this.code].exitCode
  }
}

export class UsageError extends RadmeshError {
  constructor(message: string) {
    super('RADMESH_USAGE', message)
    this.name = 'UsageError'
  }
}

export class BadRequestError extends RadmeshError {
  constructor(message: string) {
    super('RADMESH_BAD_REQUEST', message)
    this.name = 'BadRequestError'
  }
}

/** HOME is missing a file it must have, or one of its files cannot be read. */
export class HomeError extends RadmeshError {
  constructor(
    code: 'RADMESH_HOME_MISSING' | 'RADMESH_HOME_CORRUPT' | 'RADMESH_HOME_EXISTS' | 'RADMESH_NOT_JOINED',
    message: string,
    options?: { cause?: unknown }
  ) {
    super(code, message, options)
    this.name = 'HomeError'
  }
}

export class ConsortiumError extends RadmeshError {
  constructor(code: 'RADMESH_CONSORTIUM_MISSING' | 'RADMESH_CONSORTIUM_EXISTS', message: string) {
    super(code, message)
    this.name = 'ConsortiumError'
  }
}

/** A certificate or revocation did not verify; `code` says why. */
export class CertificateError extends RadmeshError {
  constructor(
    code:
      | 'RADMESH_WRONG_CONSORTIUM'
      | 'RADMESH_CERTIFICATE_INVALID'
      | 'RADMESH_CERTIFICATE_EXPIRED'
      | 'RADMESH_REVOKED',
    message: string
  ) {
    super(code, message)
    this.name = 'CertificateError'
  }
}

/** Sharing or fetching a study could not be done; `code` says why. */
export class ExchangeError extends RadmeshError {
  constructor(
    code: 'RADMESH_NOT_FOUND' | 'RADMESH_NOT_A_MEMBER' | 'RADMESH_NOT_A_RECIPIENT' | 'RADMESH_REVOKED',
    message: string
  ) {
    super(code, message)
    this.name = 'ExchangeError'
  }
}

/** A worklist or report action that this member may not take now; `code` says why. */
export class CaseError extends RadmeshError {
  constructor(
    code:
      | 'RADMESH_NOT_FOUND'
      | 'RADMESH_CASE_TAKEN'
      | 'RADMESH_CASE_CLOSED'
      | 'RADMESH_NOT_ALLOWED'
      | 'RADMESH_REPORT_FINAL'
      | 'RADMESH_REPORT_CHANGED'
      | 'RADMESH_NOT_A_MEMBER',
    message: string
  ) {
    super(code, message)
    this.name = 'CaseError'
  }
}

export class ListenError extends RadmeshError {
  constructor(
    code: 'RADMESH_ADDRESS_IN_USE' | 'RADMESH_BAD_MULTIADDR',
    message: string,
    options?: { cause?: unknown }
  ) {
    super(code, message, options)
    this.name = 'ListenError'
  }
}

export class NodeNotRunningError extends RadmeshError {
  constructor(message: string) {
    super('RADMESH_NODE_NOT_RUNNING', message)
    this.name = 'NodeNotRunningError'
  }
}

export const isRadmeshError = (error: unknown): error is RadmeshError => error instanceof RadmeshError
