/**
 * The RIS of the HL7 tests and of the demo: hl7-receiver.py (beside this file) on Debian's python3-hl7, as a
 * child process. Every message it parsed arrives as one JSON line; it answers AA, or AE for the patient IDs it
 * is told to reject.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { childEnv, ownChild, stopChild } from './children.ts'
import { waitFor } from './wait.ts'

/** Debian's Python, where python3-hl7 is (a python3 earlier on the PATH may not have it). */
export const DEBIAN_PYTHON = '/usr/bin/python3'

/** What the receiver made of one message. */
export interface ReceivedOru {
  controlId: string
  type: string
  version: string
  sendingFacility: string
  patientId: string
  patientName: string
  placer: string
  filler: string
  /** OBR-2 and OBR-3: the order numbers again */
  obrPlacer: string
  obrFiller: string
  orderStatus: string
  procedure: string
  accession: string
  caseId: string
  resultStatus: string
  interpreter: string
  /** OBX-3's code, OBX-2, OBX-11, OBX-8 (the abnormal flag, table 0078), OBX-5 unescaped */
  obx: Array<{ code: string; type: string; status: string; abnormal: string; text: string }>
  /** what the receiver's checks found wrong; empty when the message is a well-formed ORU^R01 v2.5.1 */
  problems: string[]
}

export interface Hl7Receiver {
  port: number
  received: ReceivedOru[]
  output: () => string
  stop(): Promise<void>
}

export async function startHl7Receiver(port: number, options: { reject?: string[] } = {}): Promise<Hl7Receiver> {
  const script = join(import.meta.dirname, 'hl7-receiver.py')
  const args = [script, String(port), ...(options.reject ?? []).flatMap(patientId => ['--reject', patientId])]
  const child: ChildProcess = ownChild(spawn(DEBIAN_PYTHON, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] }))
  const received: ReceivedOru[] = []
  let output = ''
  let listening = false
  let pending = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      const value = JSON.parse(line) as ReceivedOru | { listening: number }
      if ('listening' in value) listening = true
      else received.push(value)
    }
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  await waitFor(
    `the python3-hl7 receiver on port ${port}`,
    () => {
      if (child.exitCode !== null) throw new Error(`the HL7 receiver exited ${child.exitCode}:\n${output}`)
      return listening ? true : undefined
    },
    10_000,
    25
  )
  return {
    port,
    received,
    output: () => output,
    stop: async () => {
      await stopChild(child, 2_000)
    }
  }
}
