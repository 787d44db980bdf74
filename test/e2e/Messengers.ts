/**
 * Real `openMessenger` clients for e2e tests, each in its own folder, with every event it emitted kept
 * in `events`; `closeAll` closes them and removes their folders.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Home from "../../src/client/Home.ts"
import type { ChatEvent } from "../../src/client/Messenger.ts"

export interface Logged {
  readonly m: Home.MessengerHandle
  readonly events: Array<ChatEvent>
  readonly home: string
}

const kdf = { N: 2 ** 14, r: 8, p: 1 }

export const messengers = () => {
  const dirs: Array<string> = []
  const open: Array<Home.MessengerHandle> = []
  const home = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "im-e2e-"))
    dirs.push(d)
    return d
  }
  return {
    home,
    /** Opens (or reopens, with `dir`) a messenger, connects it and publishes its prekeys. */
    open: async (serverUrl: string, options: Partial<Home.OpenOptions> & { readonly dir?: string } = {}): Promise<Logged> => {
      const dir = options.dir ?? home()
      const m = await Home.openMessenger({ serverUrl, home: dir, passphrase: "pw", kdf, ...options, connect: false })
      open.push(m)
      const events: Array<ChatEvent> = []
      m.onEvent((e) => events.push(e))
      await m.connect()
      await m.maintainPrekeys()
      return { m, events, home: dir }
    },
    /** A second device of `of`'s account: its identity file copied into a new folder. */
    secondDevice: (of: Logged) => {
      const dir = home()
      fs.copyFileSync(path.join(of.home, "identity.json"), path.join(dir, "identity.json"))
      return dir
    },
    closeAll: async () => {
      for (const m of open.splice(0)) await m.close().catch(() => undefined)
      for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
    }
  }
}

export const texts = (l: Logged): Array<string> =>
  l.events.flatMap((e) => (e._tag === "Received" && e.record.text !== "" ? [e.record.text] : []))

export const ofTag = <T extends ChatEvent["_tag"]>(l: Logged, tag: T): Array<Extract<ChatEvent, { _tag: T }>> =>
  l.events.filter((e): e is Extract<ChatEvent, { _tag: T }> => e._tag === tag)
