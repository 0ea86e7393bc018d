import type { Schema } from "../model.js";
export interface GenerateOptions { readonly defined: ReadonlySet<string> }
export async function generate(_schema: Schema, _dir: string, _opts: GenerateOptions): Promise<void> {}
