/** Parses stored JSON; anything unreadable is `undefined`, for the caller's schema to refuse. */
export function parseStoredJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}
