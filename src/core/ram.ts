// Guest RAM moved to src/memory/ram.ts so that the CPU can use its write-tracking path
// without an import cycle between src/core and src/cpu. This re-export keeps branches that
// still import it from here compiling while issue 8 merges; new code imports src/memory.
export { Ram, RAM_BASE, PAGE_SHIFT, dirtyBitmapBytes, checkRamSize } from "../memory/ram.js";
