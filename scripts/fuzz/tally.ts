/**
 * What every fuzz kind (`npm run fuzz -- dicom|stow|qido|p2p`) reports, and the options it takes. Each case is
 * one mutated input sent to a real node; its outcome is one of the counters below.
 */

export interface FuzzOptions {
  /** cases to try */
  cases: number
  /** the run's seed: case i uses a generator seeded from (seed, i), so one case replays on its own */
  seed: number
  /** the first case's number (`--from`): `--from 1771 --cases 1` replays case 1771 alone */
  from?: number
  /** a line of progress or a finding, for the console */
  say: (line: string) => void
}

/** A case that crashed, hung or lost data: enough to replay it. */
export interface FuzzFinding {
  kind: string
  seed: number
  case: number
  outcome: 'crashed' | 'hung' | 'lost'
  what: string
}

export interface FuzzTally {
  kind: string
  /** cases sent */
  tried: number
  /** answered with a clear refusal (a failure status, an error code, a logged penalty) */
  refused: number
  /** accepted as valid (a mutation can leave an input valid) */
  accepted: number
  /** the node process died */
  crashed: number
  /** no answer within 5 s, or /api/health slower than 1 s */
  hung: number
  /** an instance acknowledged earlier is gone or altered */
  lost: number
  findings: FuzzFinding[]
}

export const emptyTally = (kind: string): FuzzTally => ({
  kind,
  tried: 0,
  refused: 0,
  accepted: 0,
  crashed: 0,
  hung: 0,
  lost: 0,
  findings: []
})
