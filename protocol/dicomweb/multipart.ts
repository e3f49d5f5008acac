/**
 * multipart/related (RFC 2387 over RFC 2046), as DICOMweb uses it (PS3.18 8.6.1.2).
 *
 * The exchange: a STOW-RS client POSTs one multipart/related body whose parts are Part 10 files
 * (`type="application/dicom"`) and the node answers in DICOM JSON; a WADO-RS client GETs a study, series,
 * instance or frames and the node answers with a multipart/related body of files or frames. The boundary is a
 * parameter of the Content-Type, and the body reads
 *
 *   preamble CRLF "--" boundary [padding] CRLF  headers CRLF CRLF  body
 *            CRLF "--" boundary [padding] CRLF  headers CRLF CRLF  body  ...
 *            CRLF "--" boundary "--"  epilogue
 *
 * where the first delimiter may also open the body (no preamble, no CR LF before it). Only a line that starts
 * with "--" + boundary and ends with optional white space and CR LF (or "--", closing) is a delimiter; anything
 * else is body, so a part can hold any bytes, CR LF "--" and the first characters of the boundary included.
 *
 * `MultipartParser` reads a body as it arrives: pushed pieces of any size, split anywhere (a delimiter across
 * two reads included), it reports each part's headers, then its body as slices of the pieces pushed (no copy,
 * but of the few bytes of a possible delimiter carried from one piece to the next), then the part's end, and
 * last the closing delimiter. It holds at most one delimiter line and one header block whatever the parts
 * weigh, and finds delimiters in time linear in the body whatever its bytes. `parseMultipartRelated` runs it
 * over a body at hand.
 *
 * Encoding yields the delimiters and headers as small chunks and every body as the caller's own Uint8Array,
 * so a response of hundreds of megabytes can be streamed without ever being concatenated.
 *
 * In multipart/: the Content-Type and its boundary (content-type.ts), the parser (parse.ts), the writer
 * (write.ts), and the limits with their reasons (limits.ts).
 */
export { type ContentType, multipartBoundary, parseContentType } from './multipart/content-type.ts'
export {
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_PARTS,
  MAX_BOUNDARY_LENGTH,
  MAX_TRANSPORT_PADDING,
  type MultipartLimits
} from './multipart/limits.ts'
export {
  type MultipartEvent,
  MultipartParser,
  type MultipartPart,
  parseMultipartRelated
} from './multipart/parse.ts'
export {
  type EncodablePart,
  encodeMultipartParts,
  encodeMultipartPartsAsync,
  multipartRelatedHeader,
  newBoundary,
  type StreamedPart
} from './multipart/write.ts'
