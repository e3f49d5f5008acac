/**
 * Which of a case's priors its report compared with: those its COMPARISON section names, by the prior's date
 * (as 2024-03-01 or 20240301) or its accession number. That is what a reader writes ("Compared with CT HEAD of
 * 2024-03-01", the viewer's offer), and it keeps a prior that was shared but not looked at out of the record
 * of what the report rests on. The SR lists them as Pertinent Other Evidence, the FHIR report as its
 * supporting information of type comparison.
 */

/** A prior as the reports need it (worklist/cases.ts CaseState.priors). */
export interface ReportPrior {
  studyUid: string
  /** DICOM DA, '' when unknown */
  studyDate: string
  studyDescription: string
  accessionNumber: string
}

const isoDay = (da: string): string => `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}`

/** `word` in `text` with no letter or digit right before or after it (an accession number inside another is not it). */
function names(text: string, word: string): boolean {
  const escaped = word.toUpperCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(`(^|[^A-Z0-9])${escaped}($|[^A-Z0-9])`).test(text)
}

/** The priors `comparison` names, in the order of the list. */
export function comparedPriors(comparison: string, priors: readonly ReportPrior[]): ReportPrior[] {
  const text = comparison.toUpperCase()
  return priors.filter(prior => {
    const dated =
      /^\d{8}$/.test(prior.studyDate) && (names(text, isoDay(prior.studyDate)) || names(text, prior.studyDate))
    const accession = prior.accessionNumber.trim()
    return dated || (accession.length >= 3 && names(text, accession))
  })
}
