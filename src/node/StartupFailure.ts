import { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import { TransportError } from "../transport/Transport.ts"

/** A port the node is configured to take was taken by someone else at start. */
export class PortInUse extends Data.TaggedError("PortInUse")<{
  /** `l2ps`, `legacy` (the WebSocket servers' `ServeOptions.name`) or `admin`. */
  readonly server: string
  readonly host: string
  readonly port: number
}> {}

/** The setting behind each server's port, as the operator wrote it. */
const portSetting = (server: string, env: Readonly<Record<string, string | undefined>>): string =>
  server === "l2ps"
    ? "L2PS_MESSAGING_PORT"
    : server === "legacy"
    ? Number(env["RPC_SIGNALING_PORT"] ?? 0) > 0 ? "RPC_SIGNALING_PORT" : "SIGNALING_PORT"
    : server === "admin"
    ? "ADMIN_PORT"
    : `the ${server} server's port`

const configLines = (e: ConfigError.ConfigError): ReadonlyArray<string> => {
  switch (e._op) {
    case "And":
    case "Or":
      return [...configLines(e.left), ...configLines(e.right)]
    case "MissingData":
    case "InvalidData":
    case "SourceUnavailable":
    case "Unsupported": {
      // Validations lose the path; their messages name the variable themselves.
      const at = e.path.join(".")
      return [at.length === 0 || e.message.startsWith(at) ? e.message : `${at}: ${e.message}`]
    }
  }
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ")

/** What went wrong, for an operator, when `error` is a mistake the node knows; otherwise undefined. */
const known = (error: unknown, env: Readonly<Record<string, string | undefined>>): string | undefined => {
  if (ConfigError.isConfigError(error)) return [...new Set(configLines(error))].join("; ")
  const busy = error instanceof PortInUse
    ? error
    : error instanceof TransportError && error.addressInUse !== undefined
    ? { server: error.addressInUse.name, ...error.addressInUse }
    : undefined
  if (busy !== undefined) return `${portSetting(busy.server, env)}: port ${busy.port} is already in use (on ${busy.host})`
  if (error instanceof SqlError && error.message.startsWith("DATABASE_URL")) return error.message
  return undefined
}

/**
 * The one line printed when the node cannot start: the setting and what was wrong with it, no stack.
 * `detail` is set only for failures the node does not know (a bug): their full cause, for a report.
 */
export const describe = (
  cause: Cause.Cause<unknown>,
  env: Readonly<Record<string, string | undefined>>
): { readonly line: string; readonly detail?: string } => {
  const errors = [...Cause.failures(cause), ...Cause.defects(cause)]
  const lines = errors.map((e) => known(e, env))
  if (lines.length > 0 && lines.every((l) => l !== undefined)) {
    return { line: oneLine(`cannot start: ${[...new Set(lines)].join("; ")}`) }
  }
  const first = errors[0]
  const message = first instanceof Error ? first.message : first === undefined ? "interrupted" : String(first)
  return { line: oneLine(`cannot start: ${message || "unexpected failure"}`), detail: Cause.pretty(cause) }
}
