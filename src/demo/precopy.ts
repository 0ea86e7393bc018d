import type { Demo } from "./session.js";
export async function precopyDemo(d: Demo): Promise<void> {
  d.say("todo");
}
