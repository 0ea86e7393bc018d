// The serial console on the main thread's stdio, with QEMU's mux escapes: Ctrl-A x quits,
// Ctrl-A h prints help, Ctrl-A Ctrl-A sends one Ctrl-A to the guest.

const CTRL_A = 0x01;

export const SERIAL_HELP =
  "\r\nC-a h    print this help\r\n" +
  "C-a x    exit emulator\r\n" +
  "C-a C-a  sends C-a\r\n";

export interface ConsoleActions {
  toGuest(bytes: Uint8Array): void;
  quit(): void;
  print(text: string): void;
}

/** Turns keystrokes into guest input and console commands; keeps the escape state. */
export class EscapeDecoder {
  private escaped = false;

  constructor(private readonly actions: ConsoleActions) {}

  feed(chunk: Uint8Array): void {
    const out: number[] = [];
    for (const b of chunk) {
      if (this.escaped) {
        this.escaped = false;
        if (b === CTRL_A) out.push(CTRL_A);
        else if (b === 0x78 /* x */) {
          this.flush(out);
          this.actions.print("QEMU: Terminated\r\n");
          this.actions.quit();
          return;
        } else if (b === 0x68 /* h */ || b === 0x3f /* ? */) this.actions.print(SERIAL_HELP);
        continue;
      }
      if (b === CTRL_A) this.escaped = true;
      else out.push(b);
    }
    this.flush(out);
  }

  private flush(out: number[]): void {
    if (out.length > 0) this.actions.toGuest(Uint8Array.from(out));
    out.length = 0;
  }
}
