/**
 * `bun run chat`: a terminal chat against a running node (L2PS protocol). The identity and history
 * live in CHAT_HOME (default ~/.demos-im), encrypted with a passphrase (CHAT_PASSPHRASE, or asked).
 * Options: --home DIR, --server ws://host:port (CHAT_SERVER, default ws://127.0.0.1:3006),
 * --network UID (CHAT_NETWORK, default "default"). CHAT_REQUIRE_BOUND=true refuses messages not bound
 * to their hash (older clients; shown marked otherwise). CHAT_NODE_KEY: the node's ML-DSA public key
 * (hex) that must sign the batches proofs are checked against; without it, the first one seen is
 * pinned in CHAT_HOME. Type /help for the commands.
 */
import * as BunRuntime from "@effect/platform-bun/BunRuntime"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as FiberHandle from "effect/FiberHandle"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as os from "node:os"
import * as path from "node:path"
import pkg from "../../package.json" with { type: "json" }
import * as AliasBook from "../client/AliasBook.ts"
import type { ChatEvent, MessengerShape } from "../client/Messenger.ts"
import * as Home from "../client/Home.ts"
import type { ChatRecord } from "../client/MessageStore.ts"
import { defaultReconnect } from "../client/Reconnect.ts"
import { checkKdf, defaultKdf } from "../client/SecretStore.ts"
import { body, printable } from "./Escape.ts"
import { encode, toTerminal } from "../client/Qr.ts"
import * as Terminal from "./Terminal.ts"

const EVENTS_MAX = 10_000

const HELP_COMMANDS = [
  "commands:",
  "  /peers                  who is online in the network",
  "  /alias <name> <key>     give a key a name (then use the name anywhere)",
  "  /aliases                the names you gave",
  "  /to <name|key>          talk to someone: then just type",
  "  /msg <name|key> <text>  send one message",
  "  /history [name|key]     the conversation, from your local history",
  "  /status [name|key]      delivery and L1 confirmation of what you sent (checks the inclusion proofs)",
  "  /invite [reusable]      a link (and QR code) that lets someone start a conversation with you;",
  "                          one-time unless reusable, valid 7 days",
  "  /join <link>            start a conversation from someone's invite link",
  "  /verify <name|key>      the safety number you and they should both see (compare it in person or by call)",
  "  /whoami                 your key",
  "  /reconnect              connect again after giving up",
  "  /help                   this list",
  "  /quit                   leave"
].join("\n")

const USAGE = [
  `demos-im chat ${pkg.version}: a terminal chat against a running node (L2PS protocol)`,
  "",
  "usage: npm run chat [-- --home DIR] [--server ws://host:port] [--network UID] | --help | --version",
  "",
  "  --home DIR        identity and history (CHAT_HOME, default ~/.demos-im)",
  "  --server URL      the node (CHAT_SERVER, default ws://127.0.0.1:3006)",
  "  --network UID     the L2PS network (CHAT_NETWORK, default \"default\")",
  "",
  "environment:",
  "  CHAT_PASSPHRASE     protects your keys and history (asked when unset)",
  `  CHAT_SCRYPT_N       scrypt cost for a new identity, a power of two from 16384 to 262144 (default ${defaultKdf.N})`,
  "  CHAT_REQUIRE_BOUND  true: refuse messages not bound to their hash (default false)",
  "  CHAT_NODE_KEY       the node's ML-DSA public key (hex) that must sign the batches /status checks",
  "                      (default: the first one seen is pinned in the home)",
  "  CHAT_MISSED_GRACE_MS how long a gap in someone's messages stays open before it is shown missed (default 10000)",
  "  CHAT_SEND_TIMEOUT_MS how long a send waits for the node before it is shown still queued (default 15000)",
  "",
  HELP_COMMANDS
].join("\n")

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const settings = () => ({
  home: arg("home") ?? process.env["CHAT_HOME"] ?? path.join(os.homedir(), ".demos-im"),
  server: arg("server") ?? process.env["CHAT_SERVER"] ?? "ws://127.0.0.1:3006",
  network: arg("network") ?? process.env["CHAT_NETWORK"] ?? "default",
  scryptN: Number(process.env["CHAT_SCRYPT_N"] ?? defaultKdf.N),
  requireBound: process.env["CHAT_REQUIRE_BOUND"] === "true",
  nodeKey: process.env["CHAT_NODE_KEY"],
  missedGraceMs: Number(process.env["CHAT_MISSED_GRACE_MS"] ?? 10_000),
  sendTimeoutMs: Number(process.env["CHAT_SEND_TIMEOUT_MS"] ?? 15_000)
})

const KEY = /^[0-9a-fA-F]{64}$/

/** What happened to a message, in words (`/status`, `/history`): queued → sent ✓ → delivered ✓✓, or not sent. */
const DELIVERY: Record<ChatRecord["status"], string> = {
  sending: "queued: in the outbox, goes out once the node takes it",
  sent: "sent ✓",
  queued: "sent ✓, kept by the node until they come online",
  delivered: "delivered ✓✓",
  failed: "not sent",
  received: "received",
  undecryptable: "could not be decrypted"
}

/** Where a message is on its way to the chain (the node's `l2ps_*` status, with the proof's block). */
const onChain = (r: ChatRecord) => {
  switch (r.l2psStatus) {
    case "l2ps_confirmed":
      return r.proof?.blockNumber === undefined ? "confirmed on chain" : `confirmed on chain (block ${r.proof.blockNumber})`
    case "l2ps_batched":
      return "in a batch, waiting for the chain"
    default:
      return "not yet in a batch"
  }
}
const clock = (ms: number) => new Date(ms).toTimeString().slice(0, 8)
/** The time of day, with the date when it is not `today`'s (local time). */
const when = (ms: number, today: number) => {
  const day = (t: number) => new Date(t).toDateString()
  return day(ms) === day(today) ? clock(ms) : `${new Date(ms).toLocaleDateString("en-CA")} ${clock(ms)}`
}
const short = (key: string) => `${key.slice(0, 6)}…${key.slice(-4)}`

const program = Effect.gen(function*() {
  const term = yield* Terminal.make
  const cfg = settings()
  const aliasFile = path.join(cfg.home, AliasBook.ALIAS_FILE)
  const aliases: Record<string, string> = {}
  // Everything a peer or the node sent passes through `printable` (one line) or `body` (a message).
  const nameOf = (key: string) => printable(Object.entries(aliases).find(([, k]) => k === key)?.[0] ?? short(key))
  const now = Effect.map(Clock.currentTimeMillis, clock)
  const say = term.say
  const said = (prefix: string, text: string, suffix = "") => say(`${prefix}${body(text, prefix.length)}${suffix}`)

  yield* say(`demos-im chat · node ${cfg.server} · network ${cfg.network} · home ${cfg.home}`)
  const passphrase = process.env["CHAT_PASSPHRASE"] ?? (yield* term.secret("passphrase (protects your keys and history): "))
  const giveUp = (why: string) => Effect.zipRight(say(why), Effect.sync(() => void (process.exitCode = 1)))
  if (passphrase.length === 0) return yield* giveUp("! a passphrase is needed (set CHAT_PASSPHRASE or type one)")
  const badKdf = checkKdf({ ...defaultKdf, N: cfg.scryptN })
  if (badKdf !== undefined) return yield* giveUp(`! CHAT_SCRYPT_N=${printable(String(process.env["CHAT_SCRYPT_N"]))} refused: ${badKdf}`)
  if (!Number.isSafeInteger(cfg.missedGraceMs) || cfg.missedGraceMs < 0) {
    return yield* giveUp(`! CHAT_MISSED_GRACE_MS=${printable(String(process.env["CHAT_MISSED_GRACE_MS"]))} refused: a number of milliseconds`)
  }
  if (!Number.isSafeInteger(cfg.sendTimeoutMs) || cfg.sendTimeoutMs <= 0) {
    return yield* giveUp(`! CHAT_SEND_TIMEOUT_MS=${printable(String(process.env["CHAT_SEND_TIMEOUT_MS"]))} refused: a number of milliseconds`)
  }

  // Peers feed it (each message is an event): past this many unshown, the newest are not printed;
  // they are in the local history all the same (/history).
  const events = yield* Queue.dropping<ChatEvent>(EVENTS_MAX)
  const opened = yield* Home.fromHome({
    serverUrl: cfg.server,
    home: cfg.home,
    passphrase,
    l2psUid: cfg.network,
    kdf: { ...defaultKdf, N: cfg.scryptN },
    requireBound: cfg.requireBound,
    missedGraceMs: cfg.missedGraceMs,
    timeouts: { send: cfg.sendTimeoutMs },
    ...(cfg.nodeKey === undefined ? {} : { nodeKey: cfg.nodeKey }),
    onEvent: (e) => void Queue.unsafeOffer(events, e)
  }).pipe(Effect.either)
  if (opened._tag === "Left") return yield* giveUp(`! cannot open ${cfg.home}: ${opened.left.message}`)
  const m: MessengerShape = opened.right.messenger
  const book = yield* AliasBook.load(aliasFile, opened.right.secrets.identity, { acceptPlain: opened.right.migrated })
  Object.assign(aliases, book.names)
  if (book.problem !== undefined) yield* say(`! your aliases: ${printable(book.problem)}`)
  for (const notice of opened.right.notices) yield* say(`! ${printable(notice)}`)
  yield* say(opened.right.created ? `created a new identity in ${cfg.home}` : `loaded your identity from ${cfg.home}`)
  yield* say(`your key: ${m.publicKey}   (share it; /help for commands)`)

  let everConnected = false
  let warnedDown = false
  const render = (e: ChatEvent): Effect.Effect<void> =>
    Effect.gen(function*() {
      const t = yield* now
      switch (e._tag) {
        case "Received":
          return yield* said(
            `[${t}] ${nameOf(e.record.peer)}: `,
            e.record.content === undefined ? e.record.text : `[${e.record.content.type} v${e.record.content.version}]`,
            `${e.record.offline === true ? `   (sent ${e.record.sentAt === undefined ? "" : `${when(e.record.sentAt, e.record.at)} `}while you were away)` : ""}${e.record.unbound === true ? "   (unbound: an older client's message, it could be a replay)" : ""}`
          )
        case "Sent":
          return yield* said(
            `[${t}] you → ${nameOf(e.record.peer)}: `,
            e.record.text,
            e.otherDevice === true
              ? "   (sent from another of your devices)"
              : e.record.status === "queued" ? `   (sent ✓; ${nameOf(e.record.peer)} is offline: delivered when they are back)` : "   (sent ✓)"
          )
        case "Delivered":
          return yield* say(`[${t}] ✓✓ ${nameOf(e.record.peer)} received "${printable(e.record.text)}"${e.device === undefined ? "" : ` on device ${e.device}`}`)
        case "Missed":
          return yield* say(`! ${e.count} message${e.count === 1 ? "" : "s"} from ${nameOf(e.peer)} missed (lost on the way: ask them to send it again)`)
        case "Recovered":
          return yield* say(`✓ ${e.count} missed message${e.count === 1 ? "" : "s"} from ${nameOf(e.peer)} arrived after all`)
        case "Unsupported":
          return yield* say(`! ${nameOf(e.record.peer)} sent a ${printable(e.name)} v${e.version} message this chat cannot show (${e.reason}); it is kept`)
        case "Forked":
          return yield* say(`! a message from ${nameOf(e.peer)} does not follow the one before it (their device ${e.device} may have been restored from a backup)`)
        case "SendFailed":
          return yield* say(`! not sent to ${nameOf(e.record.peer)}: ${e.error.startsWith("Not registered") ? "not connected to the node" : printable(e.error)}`)
        case "Undecryptable":
          return yield* say(`! a message from ${nameOf(e.from)} was not shown: ${e.reason}`)
        case "Registered":
          if (e.reconnect && everConnected) return yield* say(`✓ reconnected to the node`)
          everConnected = true
          warnedDown = false
          return yield* say(`✓ connected to ${cfg.server}; ${e.onlinePeers.length === 0 ? "nobody else online yet" : `online: ${e.onlinePeers.map(nameOf).join(", ")}`}`)
        case "Connection":
          return e.state === "disconnected" && everConnected ? yield* say(`! lost the connection to the node (${cfg.server})`) : undefined
        case "Retrying":
          if (everConnected) return yield* say(`! node unreachable; retry ${e.attempt}/${defaultReconnect.maxAttempts} in ${e.delayMillis / 1000}s`)
          if (warnedDown) return
          warnedDown = true
          return yield* say(`! cannot reach the node at ${cfg.server}: is it running? (start one with \`npm run node\`); still trying…`)
        case "PeerJoined":
          return yield* say(`• ${nameOf(e.publicKey)} is online`)
        case "PeerLeft":
          return yield* say(`• ${nameOf(e.publicKey)} went offline`)
        case "ServerError":
          if (e.error.message.startsWith("Gave up reconnecting")) return yield* say(`! gave up reconnecting; type /reconnect to try again`)
          return yield* say(`! node error ${printable(e.error.code)}: ${printable(e.error.message)}${e.error.details === undefined ? "" : ` (${printable(e.error.details)})`}`)
      }
    })
  yield* Queue.take(events).pipe(Effect.flatMap(render), Effect.forever, Effect.forkScoped)

  const connector = yield* FiberHandle.make<void, never>()
  const connect = FiberHandle.run(
    connector,
    m.connect.pipe(
      // The message names the server and says what happened (refused, timed out, closed).
      Effect.tapError((e) => say(`! ${printable(e.message)}; trying again in 5s (/quit to leave)`)),
      Effect.retry(Schedule.spaced("5 seconds")),
      Effect.ignore
    )
  )
  yield* connect

  let current: string | undefined
  const resolve = (who: string | undefined): string | undefined => {
    if (who === undefined || who.length === 0) return current
    if (aliases[who] !== undefined) return aliases[who]
    if (KEY.test(who)) return who.toLowerCase()
    return undefined
  }
  const unknown = (who: string) => say(`! unknown peer "${who}": use a 64-hex key or a name from /alias`)

  const online = Effect.map(m.snapshot, (s) => s.registered)
  const offline = say(`! not connected to the node (${cfg.server}); try again once reconnected`)

  // Each message typed shows its way: queued (while the node is away), sent ✓, delivered ✓✓, or not sent and why.
  const send = (to: string, text: string) =>
    Effect.zipRight(
      Effect.whenEffect(
        Effect.flatMap(now, (t) => said(`[${t}] you → ${nameOf(to)}: `, text, "   (queued: goes out once the node is back)")),
        Effect.map(online, (up) => !up && everConnected)
      ),
      m.send(to, text).pipe(
        Effect.tap((r) => r.status === "sending" ? say(`  (still queued, not lost: "${printable(r.text)}" goes out once the node takes it)`) : Effect.void)
      )
    ).pipe(
      Effect.catchTag("MessengerError", (e) => say(`! not sent: ${printable(e.message)}`)),
      Effect.ignore,
      Effect.forkScoped
    )

  const statusLine = (r: ChatRecord) => {
    // Whose attestation it is: the node key that signed the batch (pinned on first use or given).
    const by = r.proof?.signer === undefined ? "" : ` signed by node ${short(r.proof.signer)}`
    const proof = r.proof === undefined
      ? ""
      : r.proof.valid
      ? ` · proof ✓${by}`
      : ` · proof ✗${r.proof.reason === undefined ? "" : ` (${printable(r.proof.reason)})`}`
    return `  "${printable(r.text)}" → ${nameOf(r.peer)}: ${DELIVERY[r.status]} · ${onChain(r)}${proof}`
  }

  const command = (line: string): Effect.Effect<boolean, never, Scope.Scope> =>
    Effect.gen(function*() {
      const [cmd, ...rest] = line.split(/\s+/)
      switch (cmd) {
        case "/quit":
        case "/exit":
          return false
        case "/help":
          yield* say(HELP_COMMANDS)
          break
        case "/whoami":
          yield* say(`your key: ${m.publicKey}`)
          break
        case "/peers": {
          if (!(yield* online)) {
            yield* offline
            break
          }
          const peers = yield* m.onlinePeers.pipe(Effect.either)
          if (peers._tag === "Left") yield* say(`! cannot list peers: ${peers.left.message.startsWith("Not registered") ? "not connected to the node" : printable(peers.left.message)}`)
          else yield* say(peers.right.length === 0 ? "nobody else is online" : `online: ${peers.right.map((k) => `${nameOf(k)} (${printable(k)})`).join(", ")}`)
          break
        }
        case "/alias": {
          const [name, key] = rest
          if (name === undefined || key === undefined || !KEY.test(key) || name.length > AliasBook.NAME_MAX) {
            yield* say(`usage: /alias <name> <64-hex key> (a name of at most ${AliasBook.NAME_MAX} characters)`)
            break
          }
          aliases[name] = key.toLowerCase()
          yield* AliasBook.save(aliasFile, opened.right.secrets.identity, aliases).pipe(Effect.catchAll((e) => say(`! ${e.message}`)))
          yield* say(`${printable(name)} = ${key.toLowerCase()}`)
          break
        }
        case "/aliases":
          yield* say(Object.keys(aliases).length === 0 ? "no names yet: /alias <name> <key>" : Object.entries(aliases).map(([n, k]) => `  ${printable(n)} = ${printable(k)}`).join("\n"))
          break
        case "/to": {
          const to = resolve(rest[0])
          if (to === undefined || rest[0] === undefined) {
            yield* (rest[0] === undefined ? say("usage: /to <name|key>") : unknown(rest[0]))
            break
          }
          current = to
          yield* say(`talking to ${nameOf(to)}: type a message`)
          break
        }
        case "/msg": {
          const [who, ...words] = rest
          const to = resolve(who)
          if (who === undefined || words.length === 0) yield* say("usage: /msg <name|key> <text>")
          else if (to === undefined) yield* unknown(who)
          else yield* send(to, words.join(" "))
          break
        }
        case "/history": {
          const who = resolve(rest[0])
          if (who === undefined) {
            yield* say("usage: /history <name|key> (or /to someone first)")
            break
          }
          const records = yield* m.conversation(who, 20)
          yield* say(records.length === 0 ? `no messages with ${nameOf(who)} yet` : records.map((r) => {
            const prefix = `  [${clock(r.at)}] ${r.direction === "out" ? "you" : nameOf(r.peer)}: `
            return `${prefix}${body(r.text, prefix.length)}${r.direction === "out" ? `   [${DELIVERY[r.status]}]` : ""}`
          }).join("\n"))
          break
        }
        case "/status": {
          const who = resolve(rest[0])
          if (who === undefined) {
            yield* say("usage: /status <name|key> (or /to someone first)")
            break
          }
          if (!(yield* online)) {
            // What this device knows; the node's word (and the chain's) once reconnected.
            const local = (yield* m.conversation(who)).filter((r) => r.direction === "out").slice(-10).map(statusLine)
            yield* say(`(not connected: as this device knows it)\n${local.length === 0 ? `you sent nothing to ${nameOf(who)} yet` : local.join("\n")}`)
            break
          }
          const records = yield* m.refresh(who).pipe(Effect.either)
          if (records._tag === "Left") {
            yield* say(`! cannot ask the node: ${records.left.message.startsWith("Not registered") ? "not connected" : printable(records.left.message)}`)
            break
          }
          const mine = records.right.filter((r) => r.direction === "out").slice(-10)
          for (const r of mine) {
            if (r.l2psStatus === "l2ps_batched" || r.l2psStatus === "l2ps_confirmed") yield* m.confirm(r.messageHash, r.direction === "in" ? r.peer : undefined).pipe(Effect.ignore)
          }
          const fresh = yield* m.conversation(who)
          const lines = fresh.filter((r) => r.direction === "out").slice(-10).map(statusLine)
          yield* say(lines.length === 0 ? `you sent nothing to ${nameOf(who)} yet` : lines.join("\n"))
          break
        }
        case "/invite": {
          if (rest[0] !== undefined && rest[0] !== "reusable") {
            yield* say("usage: /invite [reusable]")
            break
          }
          if (!(yield* online)) {
            yield* offline
            break
          }
          const reusable = rest[0] === "reusable"
          const link = yield* m.invite({ oneTime: !reusable }).pipe(Effect.either)
          if (link._tag === "Left") {
            yield* say(`! no invite: ${printable(link.left.message)}`)
            break
          }
          yield* say([
            `your invite link (${reusable ? "anyone with it, for 7 days" : "for one person, 7 days"}):`,
            link.right,
            toTerminal(encode(link.right, "M")),
            "whoever joins from it shows up here with their first message"
          ].join("\n"))
          break
        }
        case "/join": {
          if (rest[0] === undefined) {
            yield* say("usage: /join <invite link>")
            break
          }
          if (!(yield* online)) {
            yield* offline
            break
          }
          const joined = yield* m.join(rest.join("")).pipe(Effect.either)
          if (joined._tag === "Left") {
            const e = joined.left
            yield* say(`! cannot join: ${printable(e.message)}`)
            break
          }
          current = joined.right.publicKey
          const name = joined.right.name === "" ? "" : ` "${printable(joined.right.name)}"`
          yield* say(`joined${name} (${joined.right.publicKey}): type a message to start; /alias <name> ${joined.right.publicKey} to name them`)
          break
        }
        case "/verify": {
          const who = resolve(rest[0])
          if (who === undefined) {
            yield* (rest[0] === undefined ? say("usage: /verify <name|key> (or /to someone first)") : unknown(rest[0]))
            break
          }
          yield* say(`safety number with ${nameOf(who)}:\n  ${m.safetyNumber(who)}\nthe same on both screens: nobody stands between you`)
          break
        }
        case "/reconnect":
          yield* say(`connecting to ${cfg.server}…`)
          yield* connect
          break
        default:
          yield* say(`unknown command ${cmd}; /help lists them`)
      }
      return true
    })

  yield* term.lines.pipe(
    Stream.map((l) => l.trim()),
    Stream.mapEffect((line) => {
      if (line.length === 0) return say("").pipe(Effect.as(true))
      if (line.startsWith("/")) return command(line)
      if (current === undefined) return say("! who to? use /to <name|key> first, or /msg <name|key> <text>").pipe(Effect.as(true))
      return send(current, line).pipe(Effect.as(true))
    }),
    Stream.takeWhile((goOn) => goOn),
    Stream.runDrain
  )
  yield* say("bye")
}).pipe(Effect.scoped)

// Before anything asks for a passphrase.
const flags = process.argv.slice(2)
if (flags.includes("--help") || flags.includes("-h")) {
  process.stdout.write(`${USAGE}\n`)
} else if (flags.includes("--version") || flags.includes("-v")) {
  process.stdout.write(`${pkg.version}\n`)
} else {
  program.pipe(BunRuntime.runMain({ disablePrettyLogger: true }))
}
