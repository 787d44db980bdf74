import type { StorageError } from "./Storage.ts"

/**
 * Whether the database refused the statement for the data it was given (SQLSTATE classes 22, data
 * exception, and 23, integrity constraint violation), rather than for its own state (down, restarting,
 * out of connections): the same statement with other rows would succeed, so a group commit that failed
 * this way is worth trying again without the offender, and one that failed otherwise is not.
 * The SQLSTATE is `code` on PGlite's errors and `errno` on Bun's Postgres client's (whose `code` is its
 * own, ERR_POSTGRES_SERVER_ERROR).
 */
export const isDataError = (error: StorageError): boolean => {
  const driver = (error.cause as { readonly cause?: unknown } | undefined)?.cause
  if (typeof driver !== "object" || driver === null) return false
  const { code, errno } = driver as { readonly code?: unknown; readonly errno?: unknown }
  const state = typeof errno === "string" && errno.length === 5 ? errno : code
  return typeof state === "string" && state.length === 5 && (state.startsWith("22") || state.startsWith("23"))
}
