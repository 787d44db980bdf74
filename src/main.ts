import * as BunRuntime from "@effect/platform-bun/BunRuntime"
import * as Layer from "effect/Layer"
import { NodeLive } from "./node/NodeLive.ts"

// Everything the node writes (the database, its key) is for its own user alone, whatever the shell's
// umask: PGlite creates its files 0666 and its directories 0777 and lets the umask decide.
process.umask(0o077)

// SIGINT/SIGTERM interrupt the launch: the server stops accepting, in-flight commits finish, sessions close.
Layer.launch(NodeLive).pipe(BunRuntime.runMain({ disablePrettyLogger: true }))
