/**
 * `invite` and `join` over a connection (docs/PROTOCOL.md, "Invites"; the link and the record are in
 * `Invite.ts`). The Messenger exposes them; a client with its own connection can use them too.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import {
  checkJoinable,
  formatLink,
  type InviteError,
  inviteIdOf,
  type InviteLink,
  newSecret,
  notFound,
  openInvite,
  parseLink,
  sealInvite,
  attempt
} from "./Invite.ts"
import type { L2psError, L2psPeerShape } from "./L2psPeer.ts"
import type { AccountIdentity, BundleData } from "./secure/DeviceKeys.ts"

export interface InviteOptions {
  /** Gone from the node once someone fetched it (default true); false: anyone with the link, until it expires. */
  readonly oneTime?: boolean | undefined
  /** Default 7 days; at most what the node allows (`INVITE_MAX_TTL`, 30 days by default). */
  readonly expiresIn?: Duration.DurationInput | undefined
  /** Shown to whoever joins (at most 64 characters; default none). */
  readonly name?: string | undefined
}

/** What a joined link gives: the inviter's account key, its display name and its verified device bundle. */
export interface Joined {
  readonly publicKey: string
  readonly name: string
  readonly bundle: BundleData
  readonly oneTime: boolean
  readonly expiresAt: number
}

export interface InvitesConfig {
  readonly peer: L2psPeerShape
  readonly identity: AccountIdentity
  readonly nodeUrl: string
  readonly l2psUid: string
  /** The device bundle an invite carries: signed prekey and last-resort ML-KEM key, no one-time keys. */
  readonly bundle: Effect.Effect<BundleData>
}

export interface InvitesShape {
  /** Stores a sealed record on the node and returns the link to give out. */
  readonly invite: (options?: InviteOptions) => Effect.Effect<string, L2psError>
  /** Fetches and opens a link's record; every way it can fail is an `InviteError` of its own reason. */
  readonly join: (link: string) => Effect.Effect<Joined, InviteError | L2psError>
  /** Deletes one of this account's invites from the node; false when it had none. */
  readonly withdraw: (link: string) => Effect.Effect<boolean, InviteError | L2psError>
}

const DEFAULT_EXPIRY = Duration.days(7)

const inviteIdOfLink = (link: InviteLink): string => inviteIdOf(link.secret)

const parsed = (text: string): Effect.Effect<InviteLink, InviteError> =>
  Effect.suspend(() => {
    const r = attempt(() => parseLink(text))
    return "secret" in r ? Effect.succeed(r) : Effect.fail(r)
  })

export const make = (config: InvitesConfig): InvitesShape => {
  const account = config.identity.publicKey.toLowerCase()
  return {
    invite: (options = {}) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const ms = Duration.toMillis(Duration.decode(options.expiresIn ?? DEFAULT_EXPIRY))
        const link: InviteLink = {
          nodeUrl: config.nodeUrl,
          l2psUid: config.l2psUid,
          account,
          secret: newSecret(),
          expiresAt: Math.ceil((now + ms) / 1000) * 1000,
          oneTime: options.oneTime ?? true
        }
        const bundle = yield* config.bundle
        yield* config.peer.inviteStore(sealInvite(config.identity, link, { name: options.name ?? "", bundle }))
        return formatLink(link)
      }),
    join: (text) =>
      Effect.gen(function*() {
        const link = yield* parsed(text)
        const now = yield* Clock.currentTimeMillis
        const here = attempt(() => checkJoinable(link, { nodeUrl: config.nodeUrl, l2psUid: config.l2psUid, account }, now))
        if (here !== undefined) return yield* Effect.fail(here)
        const answer = yield* config.peer.inviteFetch(inviteIdOfLink(link)).pipe(
          Effect.catchIf((e): e is L2psError => e.code === "INVITE_NOT_FOUND", () => Effect.fail(notFound(link)))
        )
        const opened = attempt(() => openInvite(link, answer))
        if (!("bundle" in opened)) return yield* Effect.fail(opened)
        return { publicKey: link.account, name: opened.name, bundle: opened.bundle, oneTime: link.oneTime, expiresAt: link.expiresAt }
      }),
    withdraw: (text) =>
      Effect.gen(function*() {
        const link = yield* parsed(text)
        const r = yield* config.peer.inviteDelete(inviteIdOfLink(link))
        return r.deleted
      })
  }
}
