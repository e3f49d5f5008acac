/**
 * The nodes of one end-to-end test file: a scratch consortium made before its first test, and every node the
 * file starts killed after its last, whichever test failed.
 */
import type { Test } from 'uvu'
import { createScratchConsortium, type ScratchConsortium } from '../../scripts/lib/consortium.ts'
import { type StartedNode, type StartOptions, startNode } from '../../scripts/lib/node-process.ts'

export interface NodesOfTests {
  /** the file's consortium (made in the suite's `before`) */
  readonly consortium: ScratchConsortium
  /** a new member of the consortium (`ScratchConsortium.member`): its HOME */
  member: ScratchConsortium['member']
  /** the nodes started so far, in order */
  readonly started: readonly StartedNode[]
  /** starts a node on HOME with the file's default options, then `options` (extra arguments after the defaults') */
  start(home: string, options?: StartOptions): Promise<StartedNode>
  /** a node started some other way, to be killed with the rest */
  track<T extends StartedNode>(node: T): T
}

export function nodesOfTests(suite: Test, consortiumName: string, defaults: StartOptions = {}): NodesOfTests {
  let consortium: ScratchConsortium | undefined
  const started: StartedNode[] = []
  suite.before(async () => {
    consortium = await createScratchConsortium(consortiumName)
  })
  suite.after(async () => {
    await Promise.all(started.map(async node => await node.kill()))
  })
  const track = <T extends StartedNode>(node: T): T => {
    started.push(node)
    return node
  }
  return {
    get consortium(): ScratchConsortium {
      if (consortium === undefined) throw new Error('the consortium is made before the first test: use it in a test')
      return consortium
    },
    member: async (...args) => {
      if (consortium === undefined) throw new Error('the consortium is made before the first test: use it in a test')
      return await consortium.member(...args)
    },
    started,
    track,
    start: async (home, options = {}) =>
      track(
        await startNode(home, {
          ...defaults,
          ...options,
          extraArgs: [...(defaults.extraArgs ?? []), ...(options.extraArgs ?? [])]
        })
      )
  }
}
