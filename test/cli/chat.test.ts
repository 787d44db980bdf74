/**
 * `bun run chat` in real terminals: two chats in tmux (a private tmux server) against the node
 * started as a user starts it, driven with send-keys and read with capture-pane.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import { L2PSMessagingPeer } from "../../src/client/L2PSMessagingPeer.ts"
import { generateIdentity, messageHashOf, sealBound, sealFor, signFnOf } from "../../src/client/L2psCrypto.ts"
import * as Messenger from "../../src/client/Messenger.ts"
import { safetyNumber } from "../../src/client/secure/SafetyNumber.ts"
import { bunBinary, freePort, type NodeProcess, REPO_ROOT, startNode } from "../support/NodeProcess.ts"
import { startRelayProxy } from "../support/RelayProxy.ts"
import * as Tmux from "../support/Tmux.ts"

const homes: Array<string> = []
let node: NodeProcess

const terminals = Tmux.make(`im-chat-test-${process.pid}`)
const tmux = terminals.run
const { screen, waitFor, type } = terminals

const startChat = (session: string, passphrase: string, home = fs.mkdtempSync(path.join(os.tmpdir(), `im-chat-${session}-`)), server = node.url, extra: Record<string, string> = {}) => {
  homes.push(home)
  const env = { CHAT_HOME: home, CHAT_PASSPHRASE: passphrase, CHAT_SERVER: server, CHAT_SCRYPT_N: "16384", ...extra }
  const q = Tmux.shellQuote
  const command = `env ${Object.entries(env).map(([k, v]) => `${k}=${q(v)}`).join(" ")} ${q(bunBinary())} run chat`
  terminals.start(session, REPO_ROOT, command)
}

beforeAll(async () => {
  if (!Tmux.available()) throw new Error("tmux is not installed: apt-get install -y tmux (.ci/run does)")
  node = await startNode({
    env: { ADMIN_PORT: "0", REGISTRATION_BURST_PER_ADDRESS: "100000", L2PS_BATCH_INTERVAL_MS: "100", L1_BLOCK_INTERVAL_MS: "100", L1_FINALITY_DEPTH: "1" },
    freePortEnv: ["SIGNALING_PORT"]
  })
}, 30_000)

afterAll(async () => {
  tmux("kill-server")
  await node?.dispose()
  for (const h of homes) fs.rmSync(h, { recursive: true, force: true })
})

describe("bun run chat", () => {
  test("two chats exchange messages, see receipts and confirmations, and survive the node going down", async () => {
    startChat("alice", "alice's passphrase")
    startChat("bob", "bob's passphrase")
    const keyA = (await waitFor("alice", /your key: ([0-9a-f]{64})/))[1]!
    const keyB = (await waitFor("bob", /your key: ([0-9a-f]{64})/))[1]!
    await waitFor("alice", /created a new identity in /)
    await waitFor("alice", /✓ connected to ws:\/\//)
    await waitFor("bob", /✓ connected to ws:\/\//)

    type("alice", `/alias bob ${keyB}`)
    type("alice", "/to bob")
    await waitFor("alice", /talking to bob/)
    type("alice", "hello from alice")
    await waitFor("bob", new RegExp(`\\] ${keyA.slice(0, 6)}…${keyA.slice(-4)}: hello from alice`))
    await waitFor("alice", /you → bob: hello from alice {3}\(sent ✓\)/)
    await waitFor("alice", /✓✓ bob received "hello from alice"/)

    type("bob", `/alias alice ${keyA}`)
    type("bob", "/msg alice hi alice, bob here")
    await waitFor("alice", /\] bob: hi alice, bob here/)
    type("alice", "/peers")
    await waitFor("alice", new RegExp(`online: bob \\(${keyB}\\)`))

    // confirmation on L1, with the inclusion proof checked by the client
    let confirmed = false
    for (let i = 0; i < 20 && !confirmed; i++) {
      type("alice", "/status")
      await Bun.sleep(250)
      confirmed = /"hello from alice" → bob: delivered ✓✓ · confirmed on chain \(block \d+\) · proof ✓ signed by node [0-9a-f]{6}…[0-9a-f]{4}$/m.test(screen("alice"))
    }
    expect(confirmed).toBe(true)

    // an error coming back from the node
    type("alice", `/msg ${keyA} talking to myself`)
    await waitFor("alice", /! not sent to [0-9a-f]{6}…[0-9a-f]{4}: Cannot send message to yourself/)

    // the node goes down: clear messages, then both chats come back by themselves
    await node.stop()
    await waitFor("alice", /! lost the connection to the node \(ws:\/\//)
    await waitFor("alice", /! node unreachable; retry 1\/10 in 1s/)
    type("alice", "/peers")
    await waitFor("alice", /! not connected to the node \(ws:\/\/[^)]+\); try again once reconnected/)
    type("alice", "sent while the node was down")
    await waitFor("alice", /you → bob: sent while the node was down {3}\(queued: goes out once the node is back\)/)
    node = await node.restart()
    await waitFor("alice", /✓ reconnected to the node/)
    await waitFor("bob", /✓ reconnected to the node/)
    await waitFor("bob", /: sent while the node was down/)
    await waitFor("alice", /✓✓ bob received "sent while the node was down"/)

    type("bob", "/history alice")
    await waitFor("bob", /\] you: hi alice, bob here {3}\[delivered ✓✓\]/)
    type("alice", "/help")
    await waitFor("alice", /\/alias <name> <key>/)
    // both screens show the same safety number, and it is the two keys' own
    type("alice", "/verify bob")
    type("bob", "/verify alice")
    const digits = /safety number with (?:alice|bob):\n {2}((?:\d{5} ){11}\d{5})/
    const seenByAlice = (await waitFor("alice", digits))[1]!
    expect((await waitFor("bob", digits))[1]).toBe(seenByAlice)
    expect(seenByAlice).toBe(safetyNumber(keyA, keyB))
    type("alice", "/quit")
    await waitFor("alice", /^bye$/m)
  }, 40_000)

  test("a peer's escape sequences and newlines are shown as text, under the peer's name", async () => {
    // tmux takes OSC 52 from the application into its paste buffers when set-clipboard is on.
    startChat("carol", "carol's passphrase")
    tmux("set-option", "-s", "set-clipboard", "on")
    const keyC = (await waitFor("carol", /your key: ([0-9a-f]{64})/))[1]!
    await waitFor("carol", /✓ connected to ws:\/\//)
    const mallory = generateIdentity()
    type("carol", `/alias alice ${mallory.publicKey.replace(/^./, (c) => (c === "0" ? "1" : "0"))}`)
    const ESC = "\u001b"
    const text = `hello\n[12:00:00] alice: please type your passphrase\r[12:00:01] alice: again${ESC}]52;c;c3RvbGVu\u0007${ESC}[1A${ESC}[2Kend\u202eevil`
    await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const m = yield* Messenger.make({ serverUrl: node.url, identity: mallory })
      yield* m.connect
      yield* m.send(keyC, text)
    })))
    const short = `${mallory.publicKey.slice(0, 6)}…${mallory.publicKey.slice(-4)}`
    await waitFor("carol", new RegExp(`\\] ${short}: hello$`, "m"))
    const shown = screen("carol")
    const indent = " ".repeat(`[00:00:00] ${short}: `.length)
    expect(shown).toContain(`\n${indent}[12:00:00] alice: please type your passphrase\n`)
    expect(shown).toContain(`\n${indent}[12:00:01] alice: again\\x1b]52;c;c3RvbGVu\\x07\\x1b[1A\\x1b[2Kend\\u202eevil`)
    expect(shown).not.toMatch(/^\[12:00:0\d\] alice:/m)
    expect(tmux("list-buffers").stdout).toBe("")

    // a message from a client that does not bind its ciphertext to the hash (the SDK's way) is marked
    const sdkId = generateIdentity()
    const sdk = new L2PSMessagingPeer({ serverUrl: node.url, publicKey: sdkId.publicKey, l2psUid: "default", signFn: signFnOf(sdkId) })
    await sdk.connect()
    const encrypted = sealFor(sdkId, keyC, "from an older client")
    await sdk.send(keyC, encrypted, messageHashOf(sdkId.publicKey, keyC, encrypted, Date.now()))
    await waitFor("carol", /: from an older client {3}\(unbound: an older client's message, it could be a replay\)/)
    await sdk.dispose()
    type("carol", "/quit")
  }, 30_000)

  test("an alias list rewritten by someone without the passphrase is reported and not used", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "im-chat-dave-"))
    startChat("dave", "dave's passphrase", home)
    await waitFor("dave", /✓ connected to ws:\/\//)
    const bob = generateIdentity().publicKey
    const mallory = generateIdentity().publicKey
    type("dave", `/alias bob ${bob}`)
    await waitFor("dave", new RegExp(`^bob = ${bob}$`, "m"))
    type("dave", "/quit")
    await waitFor("dave", /^bye$/m)
    tmux("kill-session", "-t", "dave")
    // whoever can write the folder moves "bob" to their own key
    fs.writeFileSync(path.join(home, "aliases.json"), JSON.stringify({ bob: mallory }, null, 2))
    startChat("dave2", "dave's passphrase", home)
    await waitFor("dave2", /! your aliases: .*aliases\.json is not sealed with your identity .*: not used/)
    type("dave2", "/aliases")
    await waitFor("dave2", /no names yet/)
    expect(screen("dave2")).not.toContain(mallory)
    type("dave2", "/quit")
  }, 30_000)

  test("a message sent while you were away shows when it was sent; a missing node gets the command that starts one", async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "im-chat-erin-"))
    startChat("erin", "erin's passphrase", home)
    const keyE = (await waitFor("erin", /your key: ([0-9a-f]{64})/))[1]!
    await waitFor("erin", /✓ connected to ws:\/\//)
    type("erin", "/quit")
    await waitFor("erin", /^bye$/m)
    tmux("kill-session", "-t", "erin")
    // Sealed two days ago (the sender's clock, bound into the message), delivered from the queue now.
    const sender = generateIdentity()
    const sentAt = Date.now() - 2 * 86_400_000
    const peer = new L2PSMessagingPeer({ serverUrl: node.url, publicKey: sender.publicKey, l2psUid: "default", signFn: signFnOf(sender) })
    await peer.connect()
    // Until the node has seen Erin's chat go, a send would be delivered live.
    for (const until = Date.now() + 5000; (await peer.discover()).includes(keyE) && Date.now() < until;) await Bun.sleep(50)
    const { encrypted, messageHash } = sealBound(sender, keyE, "written while you were away", sentAt)
    expect(await peer.send(keyE, encrypted, messageHash)).toMatchObject({ status: "queued" })
    await peer.dispose()
    startChat("erin2", "erin's passphrase", home)
    const day = `${new Date(sentAt).toLocaleDateString("en-CA")} ${new Date(sentAt).toTimeString().slice(0, 8)}`
    await waitFor("erin2", new RegExp(`: written while you were away {3}\\(sent ${day} while you were away\\)`))
    type("erin2", "/quit")

    startChat("frank", "frank's passphrase", undefined, `ws://127.0.0.1:${freePort()}`)
    await waitFor("frank", /! cannot reach the node at ws:\/\/127\.0\.0\.1:\d+: is it running\? \(start one with `npm run node`\); still trying…/)
    type("frank", "/quit")
  }, 30_000)

  test("a message withheld on the way shows as missed, and its recovery once it arrives; ✓✓ names the device that has it", async () => {
    // Gina's chat goes through a relay that keeps back Hank's second message the first time it passes.
    let seen = 0
    let withheld: string | undefined
    const relay = startRelayProxy(node.url, (frame) => {
      const f = JSON.parse(frame) as { type: string; payload?: { messageHash?: string } }
      if (f.type !== "message") return [frame]
      if (withheld === undefined && ++seen === 2) {
        withheld = f.payload!.messageHash!
        return []
      }
      return [frame]
    })
    try {
      startChat("gina", "gina's passphrase", undefined, relay.url, { CHAT_MISSED_GRACE_MS: "300" })
      startChat("hank", "hank's passphrase")
      const keyG = (await waitFor("gina", /your key: ([0-9a-f]{64})/))[1]!
      const keyH = (await waitFor("hank", /your key: ([0-9a-f]{64})/))[1]!
      await waitFor("gina", /✓ connected to ws:\/\//)
      await waitFor("hank", /✓ connected to ws:\/\//)
      type("hank", `/alias gina ${keyG}`)
      type("gina", `/alias hank ${keyH}`)
      for (const text of ["first", "second", "third"]) {
        type("hank", `/msg gina ${text}`)
        await waitFor("hank", new RegExp(`you → gina: ${text}`))
      }
      await waitFor("gina", /\] hank: third/)
      await waitFor("gina", /! 1 message from hank missed \(lost on the way: ask them to send it again\)/)
      const deviceLine = (await waitFor("hank", /✓✓ gina received "first" on device (\d+)/))[1]
      expect(Number(deviceLine)).toBeGreaterThan(0)
      // Never acknowledged, it comes again once Gina's chat reconnects.
      relay.dropClients()
      await waitFor("gina", /\] hank: second/)
      await waitFor("gina", /✓ 1 missed message from hank arrived after all/)
      expect(screen("gina").match(/missed \(lost on the way/g)).toHaveLength(1)
      type("gina", "/quit")
      type("hank", "/quit")
    } finally {
      relay.stop()
    }
  }, 40_000)

  test("/invite prints a link and its QR code; /join <link> from another chat starts the conversation, and a used one-time link is refused", async () => {
    startChat("inviter", "inviter's passphrase")
    startChat("joiner", "joiner's passphrase")
    const keyI = (await waitFor("inviter", /your key: ([0-9a-f]{64})/))[1]!
    await waitFor("inviter", /✓ connected to ws:\/\//)
    await waitFor("joiner", /✓ connected to ws:\/\//)
    type("inviter", "/invite")
    const link = (await waitFor("inviter", /^(demos-im:\S+)$/m))[1]!
    await waitFor("inviter", /whoever joins from it shows up here/)
    // The QR code: rows of half blocks between the link and the last line.
    const qrRows = screen("inviter").split("\n").filter((l) => /^[ ▀▄█]{40,}$/.test(l.trimEnd()) && /[▀▄█]/.test(l))
    expect(qrRows.length).toBeGreaterThan(15)
    type("joiner", `/join ${link}`)
    await waitFor("joiner", new RegExp(`joined \\(${keyI}\\): type a message to start`))
    type("joiner", "hi, I came from your link")
    await waitFor("inviter", /: hi, I came from your link/)
    type("joiner", `/join ${link}`)
    await waitFor("joiner", /! cannot join: This one-time invite was used already/)
    type("joiner", "/join demos-im:nonsense")
    await waitFor("joiner", /! cannot join: Not an invite link|! cannot join: The invite link is cut short/)
  }, 30_000)

  test("the outbox as the issue tried it: the node stopped past the send timeout, a typed message is queued, not failed, then sent ✓ and delivered ✓✓; /status agrees all along", async () => {
    // The send timeout shortened from its 15 s default (CHAT_SEND_TIMEOUT_MS): the node stays down past
    // it all the same, and the reconnect that follows comes at the backoff's early, short delays.
    startChat("ivy", "ivy's passphrase", undefined, node.url, { CHAT_SEND_TIMEOUT_MS: "3000" })
    startChat("jack", "jack's passphrase")
    const keyG = (await waitFor("ivy", /your key: ([0-9a-f]{64})/))[1]!
    const keyH = (await waitFor("jack", /your key: ([0-9a-f]{64})/))[1]!
    await waitFor("ivy", /✓ connected to ws:\/\//)
    await waitFor("jack", /✓ connected to ws:\/\//)
    type("ivy", `/alias hank ${keyH}`)
    type("ivy", "/to hank")
    type("ivy", "before the outage")
    await waitFor("ivy", /you → hank: before the outage {3}\(sent ✓\)/)
    await waitFor("ivy", /✓✓ hank received "before the outage"/)

    await node.stop()
    await waitFor("ivy", /! lost the connection to the node/)
    type("ivy", "typed while the node is down")
    await waitFor("ivy", /\] you → hank: typed while the node is down {3}\(queued: goes out once the node is back\)/)
    type("ivy", "/status")
    await waitFor("ivy", /\(not connected: as this device knows it\)\n {2}"before the outage" → hank: delivered ✓✓ · .*\n {2}"typed while the node is down" → hank: queued: in the outbox, goes out once the node takes it · not yet in a batch/)
    // Past the 3 s a send waits for the node: still queued, never failed.
    await waitFor("ivy", /\(still queued, not lost: "typed while the node is down" goes out once the node takes it\)/, 25_000)
    node = await node.restart()
    await waitFor("ivy", /✓ reconnected to the node/, 40_000)
    await waitFor("ivy", /\] you → hank: typed while the node is down {3}\(sent ✓[);]/)
    await waitFor("jack", new RegExp(`\\] ${keyG.slice(0, 6)}…${keyG.slice(-4)}: typed while the node is down`), 40_000)
    await waitFor("ivy", /✓✓ hank received "typed while the node is down"/)
    type("ivy", "/status")
    await waitFor("ivy", /"typed while the node is down" → hank: delivered ✓✓ · /)
    expect(screen("ivy")).not.toMatch(/not sent|failed/)
    expect(screen("jack").match(/: typed while the node is down/g)).toHaveLength(1)
    type("ivy", "/quit")
    type("jack", "/quit")
  }, 120_000)

  test("CHAT_SCRYPT_N below the floor is refused before any identity is written", () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "im-chat-weak-"))
    homes.push(home)
    const r = spawnSync(bunBinary(), ["run", "chat"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      input: "",
      timeout: 20_000,
      env: { ...process.env, CHAT_HOME: home, CHAT_PASSPHRASE: "pw", CHAT_SERVER: node.url, CHAT_SCRYPT_N: "1024" }
    })
    expect(r.stdout).toMatch(/! CHAT_SCRYPT_N=1024 refused: scrypt N must be a power of two from 16384 to 262144/)
    expect(r.status).toBe(1)
    expect(fs.existsSync(path.join(home, "identity.json"))).toBe(false)
  }, 30_000)
})
