// QMP error classes and the error object every QMP-visible failure is reported with.
// Class names are QEMU's (qapi/error.json, ErrorClass); descriptions use QEMU's wording
// so that clients written against QEMU recognise them. They live beside the visitor
// runtime (as QEMU's qapi/error.h does) because the generated validators raise them, and
// everything above (the wire layer, the monitor, the block layer) imports them from here.

export type QmpErrorClass =
  | "GenericError"
  | "CommandNotFound"
  | "DeviceNotActive"
  | "DeviceNotFound"
  | "KVMMissingCap";

export class QmpError extends Error {
  readonly errorClass: QmpErrorClass;

  constructor(errorClass: QmpErrorClass, desc: string) {
    super(desc);
    this.name = "QmpError";
    this.errorClass = errorClass;
  }

  /** The `error` member of a QMP reply. */
  toWire(): { class: QmpErrorClass; desc: string } {
    return { class: this.errorClass, desc: this.message };
  }
}

/** A GenericError, the class QEMU uses for nearly everything. */
export function genericError(desc: string): QmpError {
  return new QmpError("GenericError", desc);
}
