/**
 * The site's RIS in the demo: Debian's python3-hl7 listening for MLLP (scripts/lib/hl7-receiver.py), the
 * `--ris` of the site's node; a FINAL report reaches it as an ORU^R01 and the site shows the RIS's ACK on the
 * case; so does the critical result flagged before it (an ORU^R01 of its own, status P, OBX-8 AA). Without
 * python3-hl7 the step is skipped, saying why.
 */
import { existsSync } from 'node:fs'
import { type Hl7Receiver, startHl7Receiver } from '../lib/hl7-receiver.ts'
import { freePort } from '../lib/ports.ts'
import { type Running, say, until } from './common.ts'

/** Where Debian's python3-hl7 keeps the MLLP server the receiver uses. */
const PYTHON3_HL7 = '/usr/lib/python3/dist-packages/hl7/mllp/streams.py'

/** The RIS, or why there is none (python3-hl7 missing, or it did not start). */
export async function startRis(): Promise<Hl7Receiver | string> {
  if (!existsSync(PYTHON3_HL7)) return 'python3-hl7 is not installed (apt install python3-hl7)'
  try {
    return await startHl7Receiver(await freePort())
  } catch (error) {
    return `the python3-hl7 receiver did not start: ${error instanceof Error ? error.message : String(error)}`
  }
}

interface Delivery {
  resultStatus: string
  controlId: string
  state: string
  ack?: { code: string; text: string }
}

/** Waits until the site has the RIS's answer to the case's ORU^R01, and says what the RIS made of it. */
export async function reportToRis(site: Running, ris: Hl7Receiver | string, caseId: string): Promise<void> {
  if (typeof ris === 'string') {
    say(`HL7 step skipped: ${ris}; the site runs without --ris`)
    return
  }
  const delivery = await until('the RIS to acknowledge the ORU^R01', async () => {
    const { body } = await site.api<{ delivery?: { hl7: Delivery[] } }>('GET', `/api/cases/${caseId}/report`)
    return body.delivery?.hl7.find(entry => entry.resultStatus !== 'P' && entry.state !== 'pending')
  })
  if (delivery.state !== 'delivered') {
    throw new Error(`the RIS refused the ORU^R01: ${delivery.ack?.code ?? ''} ${delivery.ack?.text ?? ''}`)
  }
  const parsed = ris.received.find(message => message.controlId === delivery.controlId)
  const checks =
    parsed === undefined
      ? ''
      : parsed.problems.length === 0
        ? `, parsed by python3-hl7: ${parsed.type} v${parsed.version}, ` + `${parsed.obx.length} OBX`
        : `, with problems: ${parsed.problems.join('; ')}`
  say(`ORU^R01 accepted by the RIS (${delivery.ack?.code ?? '?'}) at 127.0.0.1:${ris.port} over MLLP${checks}`)
  const critical = await until('the RIS to acknowledge the critical result', async () => {
    const { body } = await site.api<{ delivery?: { hl7: Delivery[] } }>('GET', `/api/cases/${caseId}/report`)
    return body.delivery?.hl7.find(entry => entry.resultStatus === 'P' && entry.state !== 'pending')
  })
  const flagged = ris.received.find(message => message.controlId === critical.controlId)?.obx[0]
  say(
    `the critical result went to the RIS too: ORU^R01 status P, OBX-8 ${flagged?.abnormal ?? '?'}, ` +
      `${critical.state} (${critical.ack?.code ?? '?'})`
  )
}
