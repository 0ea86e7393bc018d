// Temporary re-export, to be removed when issue 8's branches are merged: QmpError moved to
// src/qapi/error.ts so that the visitor runtime no longer imports the wire layer, and the
// block code being rewritten on another branch still imports it from here.
export { QmpError, genericError, type QmpErrorClass } from "../qapi/error.js";
