/**
 * A DICOM SCP for tests: records every C-STORE request and every log line, and answers what `answer` says.
 */
import { pino } from 'pino'
import { type DicomScp, type StoreOutcome, type StoreRequest, startDicomScp } from '../../node/dicom/scp.ts'

export class RecordingScp {
  readonly received: StoreRequest[] = []
  readonly logLines: Array<Record<string, unknown>> = []
  answer: (request: StoreRequest) => Promise<StoreOutcome> = async () => ({ status: 0 })

  /** Starts the SCP on a free loopback port for `aeTitle`. */
  async start(aeTitle: string): Promise<DicomScp> {
    const log = pino(
      { level: 'debug' },
      {
        write: (line: string) => {
          this.logLines.push(JSON.parse(line) as Record<string, unknown>)
        }
      }
    )
    return await startDicomScp({
      port: 0,
      host: '127.0.0.1',
      aeTitle,
      log,
      onStore: async request => {
        this.received.push(request)
        return await this.answer(request)
      }
    })
  }

  /** Log lines whose message is exactly `msg`. */
  logged(msg: string): Array<Record<string, unknown>> {
    return this.logLines.filter(line => line['msg'] === msg)
  }
}
