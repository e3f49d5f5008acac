"""A RIS's HL7 listener for the tests and the demo, built on Debian's python3-hl7 (not on anything radmesh wrote).

Listens for MLLP on 127.0.0.1:PORT, parses each message with hl7.parse, checks that it is an ORU^R01 v2.5.1
laid out as MSH PID ORC OBR OBX... (result status F, C, or P for a critical result told before the report),
prints one JSON line per message and answers AA; AE (with a reason) for
a patient ID given with --reject, or for a message that fails the checks.

    /usr/bin/python3 scripts/lib/hl7-receiver.py PORT [--reject PATIENT_ID]...
"""
import asyncio
import json
import sys

import hl7
from hl7.mllp import start_hl7_server


def field(segment, n):
    return str(segment(n)) if len(segment) > n else ''


def check(message):
    problems = []
    names = [str(segment[0]) for segment in message]
    if names[:4] != ['MSH', 'PID', 'ORC', 'OBR'] or not names[4:] or set(names[4:]) != {'OBX'}:
        problems.append('segments are ' + ' '.join(names))
    msh = message.segment('MSH')
    if field(msh, 9) != 'ORU^R01^ORU_R01':
        problems.append('MSH-9 is ' + field(msh, 9))
    if field(msh, 12) != '2.5.1':
        problems.append('MSH-12 is ' + field(msh, 12))
    if field(msh, 10) == '':
        problems.append('MSH-10 is empty')
    obr = message.segment('OBR')
    if field(obr, 25) not in ('F', 'C', 'P'):
        problems.append('OBR-25 is ' + field(obr, 25))
    for obx in message.segments('OBX'):
        if field(obx, 2) != 'FT' or field(obx, 11) != field(obr, 25):
            problems.append('OBX ' + field(obx, 1) + ' is ' + field(obx, 2) + ' with status ' + field(obx, 11))
    return problems


def summary(message, problems):
    msh, pid, orc, obr = (message.segment(name) for name in ('MSH', 'PID', 'ORC', 'OBR'))
    return {
        'controlId': field(msh, 10), 'type': field(msh, 9), 'version': field(msh, 12),
        'sendingFacility': message.unescape(field(msh, 4)),
        'patientId': str(pid(3)(1)(1)), 'patientName': field(pid, 5),
        'placer': field(orc, 2), 'filler': field(orc, 3), 'orderStatus': field(orc, 5),
        'obrPlacer': field(obr, 2), 'obrFiller': field(obr, 3),
        'procedure': message.unescape(field(obr, 4)), 'accession': field(obr, 18), 'caseId': field(obr, 20),
        'resultStatus': field(obr, 25), 'interpreter': field(obr, 32),
        'obx': [{'code': str(obx(3)(1)(1)), 'type': field(obx, 2), 'status': field(obx, 11), 'abnormal': field(obx, 8),
                 'text': message.unescape(field(obx, 5))} for obx in message.segments('OBX')],
        'problems': problems,
    }


def with_error(message, code, error, reason):
    """The ACK with MSA-1 `code` and an ERR segment: ERR-3 the HL7 error code, ERR-4 E, ERR-8 the reason."""
    text = str(message.create_ack(code)).rstrip('\r') + '\r' + '|'.join(['ERR', '', '', error, 'E', '', '', '', reason])
    return hl7.parse(text)


async def main(port, rejected):
    async def serve(reader, writer):
        try:
            while not reader.at_eof():
                message = await reader.readmessage()
                problems = check(message)
                info = summary(message, problems)
                print(json.dumps(info), flush=True)
                if problems:
                    ack = with_error(message, 'AE', '207^Application internal error', '; '.join(problems))
                elif info['patientId'] in rejected:
                    ack = with_error(message, 'AE', '204^Unknown key identifier', 'no such order here')
                else:
                    ack = message.create_ack('AA')
                writer.writemessage(ack)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await start_hl7_server(serve, host='127.0.0.1', port=port)
    print(json.dumps({'listening': port}), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    args = sys.argv[1:]
    rejects = {args[i + 1] for i, a in enumerate(args) if a == '--reject'}
    asyncio.run(main(int(args[0]), rejects))
