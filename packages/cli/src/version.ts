import { createRequire } from "node:module";

/** The cli package's version (from src/ or dist/, package.json sits one folder up). */
export const VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;
