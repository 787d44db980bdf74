/**
 * The web chat: unlock or create an identity, see who is online, chat with receipts, start a
 * conversation from an invite link (pasted, or opened as this page's `#join=<link>`) or make one with
 * its QR code, and check a message's place on the chain. Plain DOM. Everything a peer or the node sends
 * reaches the page as text (`textContent`), never as markup.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { type ChatEvent, type ChatHandle, type ChatRecord, openChat, storedKey } from "./ChatClient.ts"
import { encode, toSvgPath } from "../../client/Qr.ts"
import { type ChainState, chainStateOf, joinRefusal, newer, type Receipt, receiptOf, shortKey, timeOf } from "./Labels.ts"

/** What the server tells the page (`/config.json`). */
interface PageConfig {
  readonly nodeUrl: string
  readonly network: string
  readonly scryptN: number
}

/** How often, and how long, "check on chain" asks again while a message waits for its batch or block. */
const CHECK_EVERY = Duration.seconds(1)
const CHECK_TRIES = 60
/** Messages kept on screen in the open conversation, and people listed: peers can send without end. */
const SHOWN_MAX = 500
const KNOWN_MAX = 200
const ONLINE_MAX = 10_000
/** People listed at once; the one you talk with is always among them. */
const LISTED_MAX = 300
/** `#join=<link>`: this page opened from an invite (the fragment never reaches a server). */
const JOIN_FRAGMENT = "#join="

const byId = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`the page has no #${id}`)
  return el as T
}

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, props: { className?: string; text?: string; title?: string } = {}) => {
  const e = document.createElement(tag)
  if (props.className !== undefined) e.className = props.className
  if (props.text !== undefined) e.textContent = props.text
  if (props.title !== undefined) e.title = props.title
  return e
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const ui = {
  connection: byId<HTMLSpanElement>("connection"),
  me: byId<HTMLInputElement>("me"),
  meLabel: byId<HTMLLabelElement>("me-label"),
  lock: byId<HTMLButtonElement>("lock"),
  unlock: byId<HTMLFormElement>("unlock"),
  unlockIntro: byId<HTMLParagraphElement>("unlock-intro"),
  passphrase: byId<HTMLInputElement>("passphrase"),
  passphraseAgain: byId<HTMLInputElement>("passphrase-again"),
  passphraseAgainLabel: byId<HTMLLabelElement>("passphrase-again-label"),
  unlockButton: byId<HTMLButtonElement>("unlock-button"),
  unlockStatus: byId<HTMLParagraphElement>("unlock-status"),
  chat: byId<HTMLElement>("chat"),
  peers: byId<HTMLUListElement>("peers"),
  talkTo: byId<HTMLFormElement>("talk-to"),
  talkKey: byId<HTMLInputElement>("talk-key"),
  title: byId<HTMLHeadingElement>("conversation-title"),
  peerKey: byId<HTMLInputElement>("peer-key"),
  messages: byId<HTMLOListElement>("messages"),
  composer: byId<HTMLFormElement>("composer"),
  text: byId<HTMLInputElement>("text"),
  sendButton: byId<HTMLButtonElement>("send"),
  notices: byId<HTMLUListElement>("notices"),
  unlockJoin: byId<HTMLParagraphElement>("unlock-join"),
  joinForm: byId<HTMLFormElement>("join-form"),
  joinLink: byId<HTMLInputElement>("join-link"),
  joinButton: byId<HTMLButtonElement>("join-button"),
  joinStatus: byId<HTMLParagraphElement>("join-status"),
  inviteForm: byId<HTMLFormElement>("invite-form"),
  inviteReusable: byId<HTMLInputElement>("invite-reusable"),
  inviteButton: byId<HTMLButtonElement>("invite-button"),
  inviteStatus: byId<HTMLParagraphElement>("invite-status"),
  invite: byId<HTMLDivElement>("invite"),
  inviteLink: byId<HTMLInputElement>("invite-link"),
  inviteQr: document.getElementById("invite-qr") as unknown as SVGSVGElement,
  inviteQrPath: document.getElementById("invite-qr-path") as unknown as SVGPathElement,
  invitePageLink: byId<HTMLInputElement>("invite-page-link")
}

/** The mark of a message's way, and beside it what the mark alone does not say (queued, not sent: why). */
const receiptElements = (receipt: Receipt, failed: boolean): Array<HTMLElement> => {
  const tick = el("span", { className: "receipt", text: receipt.mark, title: receipt.meaning })
  tick.setAttribute("aria-label", receipt.meaning)
  return receipt.label === undefined ? [tick] : [tick, el("span", { className: failed ? "error" : "state", text: receipt.label })]
}

const notice = (text: string) => {
  const li = el("li", { text })
  ui.notices.append(li)
  while (ui.notices.childElementCount > 20) ui.notices.firstElementChild?.remove()
}

/** One unlocked identity on the page; gone when the page locks. */
class Session {
  readonly online = new Set<string>()
  /** keys we have talked with, online or not */
  readonly known = new Set<string>()
  readonly unread = new Map<string, number>()
  /** the message elements of the open conversation, by direction and hash (a hash is unique per sender) */
  readonly shown = new Map<string, { readonly li: HTMLLIElement; record: ChatRecord }>()
  current: string | undefined
  closed = false
  /** an invite link the page was opened with, joined once the node has registered us */
  pendingJoin: string | undefined

  constructor(readonly chat: ChatHandle) {}

  start() {
    this.chat.onEvent((e) => this.onEvent(e))
    ui.me.value = this.chat.publicKey
    ui.connection.textContent = "connecting…"
    this.chat.connect().catch((e) => notice(`cannot reach the node: ${errorText(e)}`))
  }

  /** Closes the connection; nothing it still reports reaches the page. */
  stop() {
    this.closed = true
    return this.chat.close()
  }

  onEvent(e: ChatEvent) {
    if (this.closed) return
    switch (e._tag) {
      case "Registered":
        this.online.clear()
        for (const k of e.onlinePeers) if (k.toLowerCase() !== this.chat.publicKey) this.online.add(k.toLowerCase())
        ui.connection.textContent = e.reconnect ? "reconnected" : "connected"
        ui.connection.dataset["state"] = "connected"
        if (this.pendingJoin !== undefined) {
          const link = this.pendingJoin
          this.pendingJoin = undefined
          ui.joinLink.value = link
          void this.join(link)
        }
        return this.renderPeers()
      case "PeerJoined":
        // Past the bound a join is not listed; the next registration's list has everyone.
        if (this.online.size < ONLINE_MAX) this.online.add(e.publicKey.toLowerCase())
        return this.renderPeers()
      case "PeerLeft":
        this.online.delete(e.publicKey.toLowerCase())
        return this.renderPeers()
      case "Connection":
        if (e.state !== "connected") {
          ui.connection.textContent = e.state === "reconnecting" ? "reconnecting…" : "not connected"
          ui.connection.dataset["state"] = e.state
        }
        return
      case "Retrying":
        ui.connection.textContent = `node unreachable; retry ${e.attempt} in ${Math.round(e.delayMillis / 1000)} s`
        return
      case "Received":
        this.remember(e.record.peer)
        if (e.record.peer === this.current) return this.show(e.record)
        this.unread.set(e.record.peer, (this.unread.get(e.record.peer) ?? 0) + 1)
        return this.renderPeers()
      case "Sent":
      case "Delivered":
        if (e.record.peer === this.current) this.show(e.record)
        return
      case "SendFailed":
        // Also long after it was typed (a recipient unknown for good): its bubble says why. While
        // `send` still waits, its own bubble says so when the send rejects.
        if (e.record.peer !== this.current) return notice(`not sent to ${shortKey(e.record.peer)}: ${e.error}`)
        if (this.shown.has(`out:${e.record.messageHash}`)) this.show(e.record)
        return
      case "Undecryptable":
        return notice(`a message from ${shortKey(e.from)} is not shown: ${e.reason}`)
      case "ServerError":
        return notice(`the node says: ${e.error.message} (${e.error.code})`)
    }
  }

  /** Lists `key` among the people talked with; past `KNOWN_MAX` the longest-known offline ones go. */
  remember(key: string) {
    this.known.delete(key)
    this.known.add(key)
    for (const k of this.known) {
      if (this.known.size <= KNOWN_MAX) break
      if (k !== this.current && !this.online.has(k)) {
        this.known.delete(k)
        this.unread.delete(k)
      }
    }
  }

  renderPeers() {
    // Those you talked with first, then everyone else online; within each, online first.
    const rank = (k: string) => (this.known.has(k) ? 0 : 2) + (this.online.has(k) ? 0 : 1)
    const sorted = [...new Set([...this.known, ...this.online])].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    const keys = sorted.slice(0, LISTED_MAX)
    if (this.current !== undefined && !keys.includes(this.current)) keys.unshift(this.current)
    ui.peers.replaceChildren(...keys.map((key) => {
      const li = el("li")
      const button = el("button", { className: "peer", title: key })
      button.type = "button"
      button.dataset["key"] = key
      button.dataset["online"] = String(this.online.has(key))
      if (key === this.current) button.setAttribute("aria-current", "true")
      button.append(el("span", { className: "presence", text: this.online.has(key) ? "●" : "○", title: this.online.has(key) ? "online" : "offline" }))
      button.append(el("span", { className: "name", text: shortKey(key) }))
      const unread = this.unread.get(key) ?? 0
      if (unread > 0) button.append(el("span", { className: "unread", text: String(unread), title: `${unread} new` }))
      button.addEventListener("click", () => void this.open(key))
      li.append(button)
      return li
    }))
  }

  async open(peer: string) {
    this.current = peer
    this.remember(peer)
    this.unread.delete(peer)
    this.renderPeers()
    ui.title.textContent = `Talking to ${shortKey(peer)}`
    ui.peerKey.value = peer
    ui.peerKey.hidden = false
    ui.text.disabled = false
    ui.sendButton.disabled = false
    this.shown.clear()
    ui.messages.replaceChildren()
    for (const r of await this.chat.conversation(peer, 200)) if (this.current === peer) this.show(r)
    ui.text.focus()
  }

  /** Adds the message to the open conversation, or brings its element up to date. */
  show(next: ChatRecord) {
    const id = `${next.direction}:${next.messageHash}`
    const had = this.shown.get(id)
    const record = newer(had?.record, next)
    const li = had?.li ?? el("li")
    li.className = `message ${record.direction}`
    li.dataset["hash"] = record.messageHash
    li.dataset["status"] = record.status
    const text = el("span", { className: "text", text: record.text })
    text.dir = "auto"
    const meta = el("span", { className: "meta" })
    const when = record.direction === "in" && record.sentAt !== undefined ? record.sentAt : record.at
    meta.append(el("time", { text: timeOf(when), title: new Date(when).toLocaleString() }))
    if (record.offline === true) meta.append(el("span", { className: "flag", text: "while you were away" }))
    if (record.unbound === true) meta.append(el("span", { className: "flag", text: "unbound", title: "from an older client: not bound to its message hash" }))
    const receipt = receiptOf(record)
    if (receipt !== undefined) meta.append(...receiptElements(receipt, record.status === "failed"))
    // Only our own messages: for them the client recomputes the leaf from what it sent.
    if (record.direction === "out" && (record.status === "sent" || record.status === "queued" || record.status === "delivered")) {
      const chain = had?.li.querySelector<HTMLElement>(".chain") ?? el("span", { className: "chain" })
      // What an earlier check found, as the history keeps it.
      if (had === undefined && record.proof !== undefined) {
        const state = chainStateOf({ ...record.proof, status: record.l2psStatus ?? "" })
        chain.textContent = state.text
        chain.dataset["state"] = state._tag
      }
      const check = had?.li.querySelector<HTMLButtonElement>("button.check") ?? el("button", { className: "check", text: "check on chain" })
      check.type = "button"
      check.onclick = () => void this.checkOnChain(record, check, chain)
      meta.append(check, chain)
    }
    li.replaceChildren(text, meta)
    if (had === undefined) ui.messages.append(li)
    this.shown.set(id, { li, record })
    for (const [oldest, { li: gone }] of this.shown) {
      if (this.shown.size <= SHOWN_MAX) break
      gone.remove()
      this.shown.delete(oldest)
    }
    li.scrollIntoView({ block: "nearest" })
  }

  /** Asks for the message's inclusion proof until the chain confirms it (or the proof fails). */
  async checkOnChain(record: ChatRecord, button: HTMLButtonElement, out: HTMLElement) {
    button.disabled = true
    const say = (state: ChainState) => {
      out.textContent = state.text
      out.dataset["state"] = state._tag
    }
    say({ _tag: "Waiting", text: "asking the node for the proof…" })
    const ask = Effect.tryPromise(async () => {
      // History gives the node's timestamp of the message: with it the client recomputes the leaf.
      await this.chat.refresh(record.peer)
      const state = chainStateOf(await this.chat.confirm(record.messageHash))
      say(state)
      return state
    })
    await Effect.runPromise(
      ask.pipe(
        Effect.repeat({ schedule: Schedule.spaced(CHECK_EVERY), while: (state) => state._tag === "Waiting" && !this.closed, times: CHECK_TRIES - 1 }),
        Effect.catchAll((e) => Effect.sync(() => say({ _tag: "Failed", text: `could not check: ${errorText(e.error)}` })))
      )
    )
    button.disabled = false
  }

  async send(text: string) {
    const to = this.current
    if (to === undefined || text.trim() === "") return
    // Shown at once, queued: while the node is away the message waits in the outbox.
    const pending = el("li", { className: "message out pending" })
    pending.dataset["status"] = "sending"
    const body = el("span", { className: "text", text })
    body.dir = "auto"
    pending.append(body, el("span", { className: "meta" }))
    const queued = receiptOf({ direction: "out", status: "sending" } as ChatRecord)
    if (queued !== undefined) pending.lastElementChild?.append(...receiptElements(queued, false))
    ui.messages.append(pending)
    pending.scrollIntoView({ block: "nearest" })
    try {
      const record = await this.chat.send(to, text)
      pending.remove()
      if (this.current === to) this.show(record)
    } catch (e) {
      if (this.closed) return
      if (this.current !== to) notice(`not sent to ${shortKey(to)}: ${errorText(e)}`)
      pending.dataset["status"] = "failed"
      pending.lastElementChild?.replaceChildren(...receiptElements({ mark: "✗", meaning: "not sent", label: `not sent: ${errorText(e)}` }, true))
    }
  }

  /** Opens an invite link: on success the conversation with its maker, who may be offline, is open. */
  async join(link: string) {
    ui.joinButton.disabled = true
    ui.joinStatus.textContent = "opening the invite…"
    delete ui.joinStatus.dataset["reason"]
    delete ui.joinStatus.dataset["state"]
    try {
      const joined = await this.chat.join(link.trim())
      if (this.closed) return
      ui.joinLink.value = ""
      ui.joinStatus.dataset["state"] = "joined"
      ui.joinStatus.textContent = `joined ${joined.name === "" ? "" : `"${joined.name}" `}(${shortKey(joined.publicKey)}): write the first message`
      await this.open(joined.publicKey)
    } catch (e) {
      if (this.closed) return
      const refusal = joinRefusal(e)
      ui.joinStatus.dataset["reason"] = refusal.reason
      ui.joinStatus.textContent = refusal.text
    } finally {
      ui.joinButton.disabled = false
    }
  }

  /** Stores an invite on the node; shows the link, its QR code and this page's address that joins it. */
  async invite(reusable: boolean) {
    ui.inviteButton.disabled = true
    ui.inviteStatus.textContent = "making an invite…"
    try {
      const link = await this.chat.invite({ oneTime: !reusable })
      if (this.closed) return
      const { viewBox, d } = toSvgPath(encode(link, "M"))
      ui.inviteQr.setAttribute("viewBox", `0 0 ${viewBox} ${viewBox}`)
      ui.inviteQrPath.setAttribute("d", d)
      ui.inviteLink.value = link
      ui.invitePageLink.value = `${location.origin}${location.pathname}${JOIN_FRAGMENT}${encodeURIComponent(link)}`
      ui.invite.hidden = false
      ui.inviteStatus.textContent = `${reusable ? "for anyone with it" : "for one person"}, valid 7 days: whoever joins shows up here with their first message`
    } catch (e) {
      if (!this.closed) ui.inviteStatus.textContent = `no invite: ${errorText(e)}`
    } finally {
      ui.inviteButton.disabled = false
    }
  }
}

/** The invite link in the page's address (`#join=<link>`), if any. */
const linkInAddress = (): string | undefined => {
  if (!location.hash.startsWith(JOIN_FRAGMENT)) return undefined
  try {
    const link = decodeURIComponent(location.hash.slice(JOIN_FRAGMENT.length)).trim()
    return link === "" ? undefined : link
  } catch {
    return location.hash.slice(JOIN_FRAGMENT.length)
  }
}

const start = async () => {
  const config = (await (await fetch("/config.json")).json()) as PageConfig
  let session: Session | undefined
  const database = `demos-im/${config.network}`
  let creating = false
  // Taken out of the address at once, so that a reload does not join again; kept until unlocked.
  let openedWith = linkInAddress()
  if (openedWith !== undefined) history.replaceState(null, "", `${location.pathname}${location.search}`)

  // A passphrase is typed twice only when it is about to seal a new identity: a typo then would lock
  // its owner out for good.
  const prepareUnlock = async () => {
    const key = await storedKey(database)
    creating = key === undefined
    ui.passphraseAgainLabel.hidden = !creating
    ui.passphraseAgain.required = creating
    ui.unlockButton.textContent = creating ? "Create identity" : "Unlock"
    ui.unlockIntro.textContent = key === undefined
      ? "No identity in this browser yet. Choose a passphrase: it seals your new keys and history here, and nobody can recover it for you."
      : `This browser holds the identity ${shortKey(key)}. Unlock it with its passphrase.`
    ui.unlockJoin.hidden = openedWith === undefined
    ui.unlockButton.disabled = false
  }

  ui.unlock.addEventListener("submit", (e) => {
    e.preventDefault()
    const passphrase = ui.passphrase.value
    if (creating && passphrase !== ui.passphraseAgain.value) {
      ui.unlockStatus.textContent = "the two passphrases differ"
      return
    }
    ui.unlockButton.disabled = true
    ui.unlockStatus.textContent = creating ? "creating your identity…" : "opening your identity…"
    openChat({
      serverUrl: config.nodeUrl,
      l2psUid: config.network,
      passphrase,
      database,
      kdf: { N: config.scryptN, r: 8, p: 1 }
    }).then(
      (chat) => {
        ui.passphrase.value = ""
        ui.passphraseAgain.value = ""
        ui.unlockStatus.textContent = ""
        ui.unlock.hidden = true
        ui.chat.hidden = false
        ui.lock.hidden = false
        ui.meLabel.hidden = false
        if (chat.created) notice("created a new identity in this browser: keep your passphrase, it cannot be recovered")
        for (const n of chat.notices) notice(n)
        session = new Session(chat)
        session.pendingJoin = openedWith
        openedWith = undefined
        session.start()
      },
      (err) => {
        ui.unlockStatus.textContent = errorText(err)
        ui.unlockButton.disabled = false
      }
    )
  })

  ui.lock.addEventListener("click", () => {
    const closing = session
    session = undefined
    ui.chat.hidden = true
    ui.lock.hidden = true
    ui.meLabel.hidden = true
    ui.unlock.hidden = false
    ui.unlockButton.disabled = true
    ui.me.value = ""
    ui.connection.textContent = "locked"
    delete ui.connection.dataset["state"]
    ui.peers.replaceChildren()
    ui.messages.replaceChildren()
    ui.notices.replaceChildren()
    ui.invite.hidden = true
    ui.inviteLink.value = ""
    ui.invitePageLink.value = ""
    ui.inviteStatus.textContent = ""
    ui.joinStatus.textContent = ""
    delete ui.joinStatus.dataset["reason"]
    delete ui.joinStatus.dataset["state"]
    void closing?.stop()
    void prepareUnlock()
  })

  ui.talkTo.addEventListener("submit", (e) => {
    e.preventDefault()
    const key = ui.talkKey.value.trim().toLowerCase()
    if (session === undefined) return
    if (key === session.chat.publicKey) return notice("that is your own key")
    ui.talkKey.value = ""
    void session.open(key)
  })

  ui.joinForm.addEventListener("submit", (e) => {
    e.preventDefault()
    void session?.join(ui.joinLink.value)
  })

  ui.inviteForm.addEventListener("submit", (e) => {
    e.preventDefault()
    void session?.invite(ui.inviteReusable.checked)
  })

  // A link opened while the page is unlocked (pasted into the address bar) is joined at once.
  window.addEventListener("hashchange", () => {
    const link = linkInAddress()
    if (link === undefined) return
    history.replaceState(null, "", `${location.pathname}${location.search}`)
    ui.joinLink.value = link
    if (session !== undefined) void session.join(link)
    else {
      openedWith = link
      ui.unlockJoin.hidden = false
    }
  })

  ui.composer.addEventListener("submit", (e) => {
    e.preventDefault()
    const text = ui.text.value
    ui.text.value = ""
    void session?.send(text)
  })

  ui.me.addEventListener("focus", () => ui.me.select())
  ui.peerKey.addEventListener("focus", () => ui.peerKey.select())
  ui.inviteLink.addEventListener("focus", () => ui.inviteLink.select())
  ui.invitePageLink.addEventListener("focus", () => ui.invitePageLink.select())
  ui.connection.textContent = `node ${config.nodeUrl}`
  await prepareUnlock()
}

start().catch((e) => notice(`the page could not start: ${errorText(e)}`))
