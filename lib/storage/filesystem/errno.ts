/** Whether a failed fs call failed with one of these codes (ENOENT, EEXIST, ...). */
export function hasCode(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}
