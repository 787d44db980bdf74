/**
 * docs/PROTOCOL.md against the code: its client frames are played against a node started in-process and
 * decoded with the node's own decoders, its server frames have the shape of what that node answered,
 * its test vectors recompute exactly, and the links of the README and of the document resolve.
 */
import { describe, expect, test } from "bun:test"
import { ed25519 } from "@noble/curves/ed25519.js"
import { sha256 } from "@noble/hashes/sha2.js"
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { existsSync, readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { makeNative } from "../../src/crypto/Crypto.ts"
import * as NodeKey from "../../src/crypto/NodeKey.ts"
import { ErrorCode } from "../../src/domain/ErrorCode.ts"
import * as Frames from "../../src/domain/Frames.ts"
import * as Prekeys from "../../src/domain/Prekeys.ts"
import * as Invites from "../../src/domain/Invites.ts"
import { ServerFrame } from "../../src/domain/ServerFrames.ts"
import { legacyChallengeMessage } from "../../src/domain/LegacyChallenge.ts"
import { decodeLegacyPayload, isLegacyServerFrameType } from "../../src/domain/LegacyServerFrames.ts"
import { canonicalJson, leafHash, root, verifyInclusion } from "../../src/domain/Merkle.ts"
import { anchorOf } from "../../src/l2ps/Prover.ts"
import * as LegacyFrames from "../../src/legacy/LegacyFrames.ts"
import { challengeRegister, clientFrames } from "./ProtocolExamples.ts"
import { type Received, runFlow } from "./ProtocolFlow.ts"
import { computeVectors } from "./ProtocolVectors.ts"

const ROOT = resolve(import.meta.dir, "../..")
const DOC = join(ROOT, "docs/PROTOCOL.md")

interface Block {
  readonly kind: "c2s" | "s2c" | "vector"
  readonly name: string
  readonly body: string
}

/** Every fenced block announced by a marker comment: `<!-- c2s: l2ps/send -->`, `<!-- s2c: l2ps -->`, `<!-- vector: leaf.hash -->`. */
export const blocksOf = (markdown: string): Array<Block> =>
  Array.from(
    markdown.matchAll(/<!-- (c2s|s2c|vector): (\S+) -->\n```(?:json|text)\n([\s\S]*?)\n```/g),
    (m) => ({ kind: m[1] as Block["kind"], name: m[2]!, body: m[3]! })
  )

const doc = readFileSync(DOC, "utf8")
const blocks = blocksOf(doc)
const of = (kind: Block["kind"]) => blocks.filter((b) => b.kind === kind)

// --- client frames decoded with the node's own decoders ---------------------------------------------

const Anything = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const l2psPayloads: Record<string, Schema.Schema<any, any>> = {
  node_info: Anything,
  register: Frames.RegisterPayload,
  discover: Schema.Struct({ cursor: Schema.optional(Schema.String), limit: Schema.optional(Schema.Int) }),
  request_public_key: Frames.PublicKeyPayload,
  send: Frames.sendPayload(131_072),
  history: Frames.HistoryPayload,
  ack: Frames.AckPayload,
  proof_request: Frames.ProofRequestPayload,
  prekeys_publish: Prekeys.PrekeysPublishPayload,
  prekeys_count: Prekeys.DevicePayload,
  bundle_fetch: Prekeys.BundleFetchPayload,
  devices: Anything,
  device_remove: Prekeys.DevicePayload,
  invite_store: Invites.InviteStorePayload,
  invite_fetch: Invites.InviteIdPayload,
  invite_delete: Invites.InviteIdPayload
}
const legacyPayloads: Record<string, Schema.Schema<any, any>> = {
  challenge: Anything,
  register: LegacyFrames.RegisterPayload,
  discover: Anything,
  request_public_key: LegacyFrames.TargetPayload,
  message: LegacyFrames.MessagePayload,
  debug_question: Anything,
  peer_response: LegacyFrames.PeerResponsePayload
}

/** Why a client frame would not decode on its server, or undefined. */
const decodeProblem = (name: string, text: string): string | undefined => {
  if (name.startsWith("l2ps/")) {
    const decoded = Frames.decodeFrame(text)
    if (decoded._tag === "Bad") return decoded.error.message
    const schema = l2psPayloads[decoded.frame.type]
    if (schema === undefined) return `no L2PS frame ${decoded.frame.type}`
    if (Either.isLeft(Schema.decodeUnknownEither(schema)(decoded.frame.payload))) return `payload of ${decoded.frame.type}`
    if (typeof decoded.frame.timestamp !== "number") return "no timestamp"
    return undefined
  }
  const decoded = LegacyFrames.decodeFrame(text)
  if (Either.isLeft(decoded)) return decoded.left.details
  const schema = legacyPayloads[decoded.right.type]
  if (schema === undefined) return `no legacy frame ${decoded.right.type}`
  if (Either.isLeft(Schema.decodeUnknownEither(schema)(decoded.right.payload))) return `payload of ${decoded.right.type}`
  return undefined
}

const decodeServerFrame = Schema.decodeUnknownEither(ServerFrame)

/** Why an L2PS server frame does not decode with `ServerFrame` (src/domain/ServerFrames.ts), or undefined. */
const serverFrameProblem = (frame: unknown): string | undefined =>
  Either.match(decodeServerFrame(frame), { onLeft: (e) => e.message.slice(0, 2000), onRight: () => undefined })

/** A JSON value's shape: object keys (sorted) with their shapes, the first element of an array, a type name. */
const shape = (v: unknown): unknown =>
  v === null
    ? "null"
    : Array.isArray(v)
    ? v.length === 0 ? [] : [shape(v[0])]
    : typeof v === "object"
    ? Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, shape((v as Record<string, unknown>)[k])]))
    : typeof v

const serverOf = (name: string) => name.split("/")[0] as "l2ps" | "legacy"

describe("docs/PROTOCOL.md", () => {
  test("has examples of both directions on both servers, and vectors", () => {
    expect(of("c2s").length).toBeGreaterThan(20)
    expect(of("s2c").length).toBeGreaterThan(25)
    expect(of("vector").length).toBeGreaterThan(25)
    // A marker without its block is an example nobody checks.
    expect(doc.match(/<!-- (c2s|s2c|vector):/g)!.length).toBe(blocks.length)
  })

  test("client frames: exactly the examples' frames, each decoded by its server's decoders", () => {
    const expected = clientFrames()
    const documented = new Map(of("c2s").map((b) => [b.name, b.body]))
    expect([...documented.keys()].sort()).toEqual([...Object.keys(expected), "legacy/register-challenge"].sort())
    for (const [name, body] of documented) {
      const text = JSON.stringify(JSON.parse(body))
      expect({ name, problem: decodeProblem(name, text) }).toEqual({ name, problem: undefined })
      if (name !== "legacy/register-challenge") expect({ name, frame: JSON.parse(body) }).toEqual({ name, frame: JSON.parse(expected[name]!) })
    }
  })

  test("L2PS server frames: each example decodes with the server frames' Schema", () => {
    const shown = of("s2c").filter((b) => b.name === "l2ps").map((b) => JSON.parse(b.body) as { type: string })
    expect(shown.length).toBeGreaterThan(15)
    for (const frame of shown) expect({ type: frame.type, problem: serverFrameProblem(frame) }).toEqual({ type: frame.type, problem: undefined })
  })

  test("the legacy challenge registration signs the documented string for its nonce, with the documented node key", () => {
    const frame = JSON.parse(of("c2s").find((b) => b.name === "legacy/register-challenge")!.body)
    const node = of("vector").find((b) => b.name === "node.publicKey")!.body
    const p = frame.payload
    const message = legacyChallengeMessage({ nodeKeyHex: node, clientId: p.clientId, nonce: p.challenge.nonce, publicKey: Uint8Array.from(p.publicKey) })
    const key = Buffer.from(p.verification.serializedPublicKey, "base64")
    expect(ml_dsa65.verify(Buffer.from(p.challenge.signature, "base64"), message, key)).toBe(true)
    expect(JSON.parse(challengeRegister(p.challenge.nonce, node)).payload.challenge.nonce).toBe(p.challenge.nonce)
  })

  describe("played against a node", () => {
    let received: Array<Received> = []
    const played = (async () => {
      const frames = Object.fromEntries(of("c2s").map((b) => [b.name, JSON.stringify(JSON.parse(b.body))]))
      received = await runFlow(frames, challengeRegister)
    })()

    test("the node accepts every client frame and answers as the document says", async () => {
      await played
      expect(received.length).toBeGreaterThan(30)
    }, 60_000)

    test("each server frame shown has the shape of one the node sent; every kind the node sent is shown", async () => {
      await played
      const shown = of("s2c").map((b) => ({ server: b.name as "l2ps" | "legacy", frame: JSON.parse(b.body) }))
      for (const { server, frame } of shown) {
        // A reply is compared with the node's reply to that very request; a pushed frame with those of its type.
        const same = received.filter((r) => {
          const sent = JSON.parse(r.text)
          return r.server === server && sent.type === frame.type && sent.requestId === frame.requestId
        })
        const match = same.some((r) => Bun.deepEquals(shape(JSON.parse(r.text)), shape(frame)))
        expect({ server, type: frame.type, match, sent: same.map((r) => shape(JSON.parse(r.text))) }).toMatchObject({ server, type: frame.type, match: true })
      }
      for (const r of received) {
        const type = JSON.parse(r.text).type
        expect({ server: r.server, type, shown: shown.some((s) => s.server === r.server && s.frame.type === type) })
          .toEqual({ server: r.server, type, shown: true })
      }
      for (const { server, frame } of shown.filter((s) => s.frame.type === "error")) {
        if (server === "l2ps") expect(Schema.is(ErrorCode)(frame.payload.code)).toBe(true)
        else expect(Schema.is(LegacyFrames.LegacyErrorType)(frame.payload.errorType)).toBe(true)
      }
      expect(new Set(received.map((r) => serverOf(`${r.server}/`)))).toEqual(new Set(["l2ps", "legacy"]))
    }, 60_000)

    test("every frame the L2PS server sent decodes with the server frames' Schema", async () => {
      await played
      const sent = received.filter((r) => r.server === "l2ps").map((r) => JSON.parse(r.text) as { type: string })
      expect(sent.length).toBeGreaterThan(15)
      for (const frame of sent) expect({ type: frame.type, problem: serverFrameProblem(frame) }).toEqual({ type: frame.type, problem: undefined })
    }, 60_000)

    test("every legacy frame the node sent, and every one shown, decodes with the legacy server frames' Schemas", async () => {
      await played
      const sent = received.filter((r) => r.server === "legacy").map((r) => JSON.parse(r.text) as { type: string; payload: unknown })
      const shown = of("s2c").filter((b) => b.name === "legacy").map((b) => JSON.parse(b.body) as { type: string; payload: unknown })
      expect(sent.length).toBeGreaterThan(8)
      for (const frame of [...sent, ...shown]) {
        const problem = isLegacyServerFrameType(frame.type)
          ? Either.match(decodeLegacyPayload(frame.type, frame.payload), { onLeft: (e) => e, onRight: () => undefined })
          : `no legacy server frame ${frame.type}`
        expect({ type: frame.type, problem }).toEqual({ type: frame.type, problem: undefined })
      }
    }, 60_000)
  })

  describe("test vectors", () => {
    const v = Object.fromEntries(of("vector").map((b) => [b.name, b.body]))
    const computed = computeVectors(v["batch.signature"])

    test("every vector recomputes exactly with the node's functions", () => {
      expect(Object.keys(v).sort()).toEqual(Object.keys(computed).sort())
      for (const name of Object.keys(computed)) expect({ name, value: v[name] }).toEqual({ name, value: computed[name] })
    })

    test("from the document's own inputs: keys, signatures, message hash, leaves, root and paths", () => {
      const key = (seed: string) => Buffer.from(ed25519.getPublicKey(Buffer.from(seed, "hex"))).toString("hex")
      expect(key(v["alice.seed"]!)).toBe(v["alice.publicKey"]!)
      expect(key(v["bob.seed"]!)).toBe(v["bob.publicKey"]!)
      const verifies = (sig: string, message: string, pub: string) =>
        ed25519.verify(Buffer.from(sig, "hex"), new TextEncoder().encode(message), Buffer.from(pub, "hex"))
      expect(verifies(v["register.v1.signature"]!, v["register.v1.string"]!, v["alice.publicKey"]!)).toBe(true)
      expect(verifies(v["register.v2.signature"]!, v["register.v2.string"]!, v["bob.publicKey"]!)).toBe(true)
      expect(verifies(v["history.v1.signature"]!, v["history.v1.string"]!, v["alice.publicKey"]!)).toBe(true)
      expect(Buffer.from(ed25519.sign(new TextEncoder().encode(v["register.v1.string"]!), Buffer.from(v["alice.seed"]!, "hex"))).toString("hex"))
        .toBe(v["register.v1.signature"]!)
      expect(NodeKey.fromSeed(Buffer.from(v["node.seed"]!, "hex")).publicKeyHex).toBe(v["node.publicKey"]!)
      expect(Buffer.from(sha256(Buffer.from(v["node.publicKey"]!, "hex"))).toString("hex")).toBe(v["node.nodeId"]!)
      expect(v["register.v2.string"]!.split(":")[3]).toBe(v["node.nodeId"]!)
      expect(Buffer.from(sha256(new TextEncoder().encode(v["message.hashInput"]!))).toString("hex")).toBe(v["message.messageHash"]!)
      const leaves = (JSON.parse(v["batch.messages"]!) as Array<Parameters<typeof leafHash>[0]>).map(leafHash)
      expect(leaves.join("\n")).toBe(v["batch.leaves"]!)
      expect(root(leaves)).toBe(v["batch.root"]!)
      expect(verifyInclusion(leaves[2]!, JSON.parse(v["batch.path2"]!), v["batch.root"]!)).toBe(true)
      expect(verifyInclusion(leaves[4]!, JSON.parse(v["batch.path4"]!), v["batch.root"]!)).toBe(true)
      expect(Buffer.from(sha256(new TextEncoder().encode(v["batch.header"]!))).toString("hex")).toBe(v["batch.batchHash"]!)
      expect(NodeKey.verify(v["node.publicKey"]!, Buffer.from(v["batch.batchHash"]!, "hex"), v["batch.signature"]!)).toBe(true)
      expect(Buffer.from(sha256(new TextEncoder().encode(v["batch.anchor"]!))).toString("hex")).toBe(v["batch.l2psTxHash"]!)
    })
  })

  test("the documented proof_response checks out: leaf and path to the root, batch hash, signature, L1 transaction", () => {
    const proof = of("s2c").map((b) => JSON.parse(b.body)).find((f) => f.type === "proof_response" && f.payload.batch !== null)!.payload
    const sent = JSON.parse(of("c2s").find((b) => b.name === "l2ps/send")!.body).payload
    const stored = JSON.parse(of("s2c").find((b) => JSON.parse(b.body).type === "history_response")!.body).payload.messages[0]
    expect(stored.messageHash).toBe(proof.messageHash)
    expect(leafHash({ l2psUid: "default", messageHash: sent.messageHash, encrypted: sent.encrypted, timestamp: stored.timestamp })).toBe(proof.leaf)
    const b = proof.batch
    expect(verifyInclusion(proof.leaf, proof.path, b.root)).toBe(true)
    const header = { l2psUid: b.l2psUid, seq: b.seq, root: b.root, size: b.size, prevBatchHash: b.prevBatchHash, createdAt: b.createdAt }
    expect(Buffer.from(sha256(new TextEncoder().encode(canonicalJson(header)))).toString("hex")).toBe(b.batchHash)
    expect(NodeKey.verify(b.signer, Buffer.from(b.batchHash, "hex"), b.signature)).toBe(true)
    const { createdAt: _, ...anchored } = header
    expect(anchorOf(makeNative(), { ...anchored, batchHash: b.batchHash, signature: b.signature, signer: b.signer }).hash).toBe(b.l2psTxHash)
  })

  test("every relative link of README.md and docs/PROTOCOL.md resolves inside the repository", () => {
    const slug = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-")
    const anchors = (file: string) =>
      new Set(Array.from(readFileSync(file, "utf8").matchAll(/^#{1,6} (.+)$/gm), (m) => slug(m[1]!)))
    const broken: Array<string> = []
    let checked = 0
    for (const file of [join(ROOT, "README.md"), DOC]) {
      const text = readFileSync(file, "utf8").replace(/```[\s\S]*?```/g, "")
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target!)) continue
        checked++
        const [path, anchor] = target!.split("#") as [string, string | undefined]
        const resolved = path === "" ? file : resolve(dirname(file), path)
        if (!resolved.startsWith(ROOT + "/") || !existsSync(resolved)) broken.push(`${file}: ${target}`)
        else if (anchor !== undefined && resolved.endsWith(".md") && !anchors(resolved).has(anchor)) broken.push(`${file}: ${target} (no such heading)`)
      }
    }
    // Repository files named in code spans (`SECURITY.md`, `src/l2ps/Merkle.ts`, `../x`) must exist too.
    for (const file of [join(ROOT, "README.md"), DOC]) {
      for (const [, named] of readFileSync(file, "utf8").matchAll(/`((?:\.\.\/)+[\w./-]+|[\w.-]+\.md|(?:src|test|docs|bench|docker|migrations)\/[\w./-]+\.(?:md|ts|sh|yml))`/g)) {
        checked++
        if (![resolve(dirname(file), named!), resolve(ROOT, named!)].some((p) => p.startsWith(ROOT + "/") && existsSync(p))) {
          broken.push(`${file}: \`${named}\``)
        }
      }
    }
    expect(broken).toEqual([])
    expect(checked).toBeGreaterThan(10)
    expect(readFileSync(join(ROOT, "README.md"), "utf8").includes("](docs/PROTOCOL.md)")).toBe(true)
  })
})
