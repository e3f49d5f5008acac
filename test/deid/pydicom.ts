/**
 * What pydicom (Debian's python3-pydicom, not radmesh's reader) sees in a file: the scripts the de-identification
 * tests run on originals and copies, and the shape of what they print.
 */

/** Printed by DUMP_PY: a value absent from the file is null, an empty one ''. */
/** Debian's Python, with python3-pydicom. */
export const PYTHON = '/usr/bin/python3'
/** The pydicom corpus files every de-identification check runs on: images, SR, RT, waveform, compressed, deflated. */
export const CORPUS = [
  'CT_small.dcm',
  'MR_small.dcm',
  'MR_small_implicit.dcm',
  'rtplan.dcm',
  'test-SR.dcm',
  'reportsi.dcm',
  'liver_1frame.dcm',
  'waveform_ecg.dcm',
  'JPEG2000.dcm',
  'SC_rgb_jpeg_dcmtk.dcm',
  'image_dfl.dcm'
]

export interface Dump {
  privateTags: string[]
  patientIdentityRemoved: string | null
  method: string[]
  methodCodes: string[]
  temporal: string | null
  metaSopInstanceUid: string
  sopInstanceUid: string
  sopClassUid: string
  studyInstanceUid: string
  seriesInstanceUid: string
  frameOfReferenceUid: string | null
  patientName: string | null
  patientId: string | null
  patientBirthDate: string | null
  patientSex: string | null
  patientAge: string | null
  studyDate: string | null
  seriesDate: string | null
  acquisitionDate: string | null
  contentDate: string | null
  instanceCreationDate: string | null
  studyTime: string | null
  /** SHA-256 of the Pixel Data value as stored (fragments and item headers included), '' without one */
  pixelSha256: string
  /**
   * what must not survive de-identification: patient name, ID, birth date, and every UID not of the standard
   * that names a thing, not a kind
   */
  identifiers: string[]
}

export const DUMP_PY = `
import hashlib, json, sys
import pydicom
ds = pydicom.dcmread(sys.argv[1])
KINDS = {'SOPClassUID', 'ReferencedSOPClassUID', 'CodingSchemeUID', 'ContextUID', 'MappingResourceUID',
    'TransferSyntaxUID', 'MediaStorageSOPClassUID', 'RelatedGeneralSOPClassUID', 'OriginalSpecializedSOPClassUID',
    'ReferencedSOPClassUIDInFile', 'ReferencedTransferSyntaxUIDInFile'}  # kinds of things, never replaced
def text(keyword):
    if keyword not in ds: return None
    value = ds.data_element(keyword).value
    return '' if value is None else str(value)
private = []
uids = []
def visit(dataset, element):
    if element.tag.is_private: private.append(str(element.tag))
    if element.VR == 'UI' and element.value and element.keyword not in KINDS:
        values = element.value if isinstance(element.value, pydicom.multival.MultiValue) else [element.value]
        uids.extend(str(v) for v in values if not str(v).startswith('1.2.840.10008.'))
ds.walk(visit)
identifiers = [v for v in uids if len(v) >= 8]  # a real UID, not a '0'
for keyword in ('PatientName', 'PatientID', 'PatientBirthDate', 'OtherPatientIDs', 'AccessionNumber'):
    value = text(keyword)
    if value and len(value.strip()) >= 4: identifiers.append(value.strip())
identifiers.append(str(ds.file_meta.MediaStorageSOPInstanceUID))
codes = [str(item.CodeValue) for item in ds.get('DeidentificationMethodCodeSequence', [])]
method = ds.get('DeidentificationMethod', [])
method = [str(m) for m in (method if isinstance(method, pydicom.multival.MultiValue) else [method])] if method else []
print(json.dumps({
    'privateTags': private,
    'patientIdentityRemoved': text('PatientIdentityRemoved'),
    'method': method,
    'methodCodes': codes,
    'temporal': text('LongitudinalTemporalInformationModified'),
    'metaSopInstanceUid': str(ds.file_meta.MediaStorageSOPInstanceUID),
    'sopInstanceUid': str(ds.SOPInstanceUID),
    'sopClassUid': str(ds.SOPClassUID),
    'studyInstanceUid': str(ds.StudyInstanceUID),
    'seriesInstanceUid': str(ds.SeriesInstanceUID),
    'frameOfReferenceUid': text('FrameOfReferenceUID'),
    'patientName': text('PatientName'),
    'patientId': text('PatientID'),
    'patientBirthDate': text('PatientBirthDate'),
    'patientSex': text('PatientSex'),
    'patientAge': text('PatientAge'),
    'studyDate': text('StudyDate'),
    'seriesDate': text('SeriesDate'),
    'acquisitionDate': text('AcquisitionDate'),
    'contentDate': text('ContentDate'),
    'instanceCreationDate': text('InstanceCreationDate'),
    'studyTime': text('StudyTime'),
    'pixelSha256': hashlib.sha256(ds.PixelData).hexdigest() if 'PixelData' in ds else '',
    'identifiers': sorted(set(identifiers)),
}))
`

/**
 * Printed by REFERENCES_PY: every UID not of the standard and not naming a kind (a class, a coding scheme), with
 * where it is ("Sequence[0]>Keyword").
 */
export interface References {
  uids: Array<[string, string]>
}

export const REFERENCES_PY = `
import json, sys
import pydicom
ds = pydicom.dcmread(sys.argv[1])
KINDS = {'SOPClassUID', 'ReferencedSOPClassUID', 'CodingSchemeUID', 'ContextUID', 'MappingResourceUID',
    'TransferSyntaxUID', 'MediaStorageSOPClassUID', 'RelatedGeneralSOPClassUID', 'OriginalSpecializedSOPClassUID',
    'ReferencedSOPClassUIDInFile', 'ReferencedTransferSyntaxUIDInFile'}  # kinds of things, never replaced
found = []
def walk(dataset, path):
    for element in dataset:
        where = path + element.keyword if element.keyword else path + str(element.tag)
        if element.VR == 'SQ':
            for i, item in enumerate(element.value): walk(item, '%s[%d]>' % (where, i))
        elif element.VR == 'UI' and element.value and element.keyword not in KINDS:
            values = element.value if isinstance(element.value, pydicom.multival.MultiValue) else [element.value]
            found.extend([where, str(v)] for v in values if not str(v).startswith('1.2.840.10008.'))
walk(ds, '')
print(json.dumps({'uids': found}))
`
