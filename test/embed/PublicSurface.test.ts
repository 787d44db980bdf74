import { describe, expect, test } from "bun:test"
import { Context, Effect, Either, Layer, TestContext } from "effect"
import type { LegacyServer } from "../../src/legacy/LegacyServer.ts"
import { NodeCore, NodeCoreInternal } from "../../src/node/NodeCore.ts"
import { NodeStatus, VERSION } from "../../src/ops/NodeStatus.ts"
import type { L2psServer } from "../../src/relay/L2psServer.ts"
import { Peers } from "../../src/relay/Peers.ts"
import { peer, testPorts } from "../support/TestNode.ts"
import type { messagingLayer } from "./host.ts"

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

// Checked by `npm run typecheck`: a host's type shows the public services and nothing more.
const exactlyPublic: Equals<Layer.Layer.Success<typeof NodeCore>, L2psServer | LegacyServer | NodeStatus> = true
const hostSeesNoPeers: Peers extends Layer.Layer.Success<ReturnType<typeof messagingLayer>> ? false : true = true

const run = <A, E>(body: Effect.Effect<A, E, import("effect/Scope").Scope>) =>
  Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(TestContext.TestContext)) as Effect.Effect<A, E>)

describe("NodeCore gives a host its public services only", () => {
  test("its output is the two servers and NodeStatus, nothing internal", () =>
    run(Effect.gen(function*() {
      expect([exactlyPublic, hostSeesNoPeers]).toEqual([true, true])
      const ports = yield* Layer.build(testPorts())
      const core = yield* Layer.build(NodeCore.pipe(Layer.provide(Layer.succeedContext(ports))))
      expect([...core.unsafeMap.keys()].sort()).toEqual(["im/L2psServer", "im/LegacyServer", "im/NodeStatus"])
      expect(Either.isLeft(Context.getOption(core, Peers).pipe(Either.fromOption(() => "absent")))).toBe(true)
    })))

  test("the testing composition still reaches the internals", () =>
    run(Effect.gen(function*() {
      const ports = yield* Layer.build(testPorts())
      const internal = yield* Layer.build(NodeCoreInternal.pipe(Layer.provide(Layer.succeedContext(ports))))
      expect(internal.unsafeMap.has("im/Peers")).toBe(true)
      expect(internal.unsafeMap.has("im/NodeStatus")).toBe(true)
    })))

  test("NodeStatus reads the node: version, key, sessions, storage, networks", () =>
    run(Effect.gen(function*() {
      const ports = yield* Layer.build(testPorts({ networks: ["chat"] }))
      const core = yield* Layer.build(NodeCore.pipe(Layer.provide(Layer.succeedContext(ports))))
      const status = Context.get(core, NodeStatus)
      expect(status.version).toBe(VERSION)
      expect(status.nodeKey).toMatch(/^[0-9a-f]{64}$/)
      expect(yield* status.sessions).toBe(0)
      const client = yield* peer().pipe(Effect.provide(ports))
      expect((yield* client.register({ l2psUid: "chat" })).type).toBe("registered")
      expect(yield* status.sessions).toBe(1)
      yield* status.storage
      const other = yield* peer().pipe(Effect.provide(ports))
      yield* other.register({ l2psUid: "chat" })
      expect(yield* status.sessions).toBe(2)
      expect((yield* client.sendTo(other.key)).type).toBe("message_sent")
      const stats = yield* status.networks
      expect(stats).toContainEqual(expect.objectContaining({ l2psUid: "chat", pending: 1 }))
    })))
})
