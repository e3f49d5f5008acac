/** What the page shows at one URL (main.ts routes between them): a view is closed when the user goes elsewhere. */
export interface View {
  close(): void
}
