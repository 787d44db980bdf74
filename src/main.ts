import * as BunRuntime from "@effect/platform-bun/BunRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { helpText } from "./config/Settings.ts"
import { NodeLive } from "./node/NodeLive.ts"
import * as StartupFailure from "./node/StartupFailure.ts"
import { VERSION } from "./ops/NodeStatus.ts"

const args = process.argv.slice(2)
if (args.includes("--help") || args.includes("-h")) {
  process.stdout.write(helpText(VERSION))
  process.exit(0)
}
if (args.includes("--version") || args.includes("-v")) {
  process.stdout.write(`${VERSION}\n`)
  process.exit(0)
}
if (args.length > 0) {
  // Settings are environment variables; an argument is a mistake the operator should hear about.
  process.stderr.write(`demos-im-node: unknown argument ${JSON.stringify(args[0])}: settings are environment variables (--help lists them)\n`)
  process.exit(2)
}

// Everything the node writes (the database, its key) is for its own user alone, whatever the shell's
// umask: PGlite creates its files 0666 and its directories 0777 and lets the umask decide.
process.umask(0o077)

/** A mistake at start is one plain line on stderr naming the setting, and exit code 1. */
const reportFailure = (cause: Cause.Cause<unknown>) =>
  Effect.sync(() => {
    const { line, detail } = StartupFailure.describe(cause, process.env)
    process.stderr.write(`demos-im-node: ${line}\n${detail === undefined ? "" : `${detail}\n`}`)
  })

// SIGINT/SIGTERM interrupt the launch: the server stops accepting, in-flight commits finish, sessions close.
Layer.launch(NodeLive).pipe(
  Effect.tapErrorCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : reportFailure(cause)),
  BunRuntime.runMain({ disablePrettyLogger: true, disableErrorReporting: true })
)
