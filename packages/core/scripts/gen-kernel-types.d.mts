// Types of gen-kernel-types.mjs, for the tests that import it.

/** One `export function` of an AssemblyScript source; types are AssemblyScript's (i32, f64, ...). */
export interface KernelDecl {
  name: string;
  /** the /** comment's text right above the declaration, "" when there is none */
  doc: string;
  params: { name: string; type: string; optional: boolean }[];
  returns: string;
}

export const INTERFACE_FILE: string;
export const README_FILE: string;
export const TABLE_START: string;
export const TABLE_END: string;
export function parseExportedFunctions(source: string, file: string): KernelDecl[];
export function collectKernelExports(read: (file: string) => string, entry?: string): KernelDecl[];
export function renderInterface(kernels: KernelDecl[]): string;
export function renderTable(kernels: KernelDecl[]): string;
export function replaceTable(readme: string, table: string, file?: string): string;
export function generateKernelFiles(options?: { coreDir?: URL; check?: boolean }): string[];
