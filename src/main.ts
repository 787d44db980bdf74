import * as BunRuntime from "@effect/platform-bun/BunRuntime"
import * as Layer from "effect/Layer"
import { NodeLive } from "./node/NodeLive.ts"

// SIGINT/SIGTERM interrupt the launch: the server stops accepting, in-flight commits finish, sessions close.
Layer.launch(NodeLive).pipe(BunRuntime.runMain({ disablePrettyLogger: true }))
