/**
 * Legacy clientIds are shown to every peer (`discover`, `fromId`, `peer_disconnected`), so they are kept
 * to characters that render the same everywhere: no homoglyphs from other scripts, no zero-width or
 * control characters. NFKC first, so that a full-width or ligature spelling names the same id as its
 * ASCII form (and so belongs to the same owner) instead of a look-alike one. The set covers what the
 * SDK's clients use: names, UUIDs, hex keys and addresses (`0x…`), e-mail-like ids.
 */
export const CLIENT_ID_MAX = 128

const ALLOWED = /^[A-Za-z0-9._@:+-]+$/

export const CLIENT_ID_RULE = `1-${CLIENT_ID_MAX} characters of A-Z a-z 0-9 . _ - @ : + (after NFKC normalisation)`

/** The id in its one canonical spelling, or undefined when it is not an allowed clientId. */
export const normalizeClientId = (raw: string): string | undefined => {
  // Bounded before normalising: NFKC can expand a string, and a peer chooses it.
  if (raw.length === 0 || raw.length > CLIENT_ID_MAX * 4) return undefined
  const id = raw.normalize("NFKC")
  return id.length <= CLIENT_ID_MAX && ALLOWED.test(id) ? id : undefined
}
