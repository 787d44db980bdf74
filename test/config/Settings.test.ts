/**
 * One list of settings (`src/config/Settings.ts`) behind `--help` and the README's table: the table is
 * that list row for row, the node reads exactly those variables, and every default the list gives is
 * the one the node uses. A setting added to `NodeConfig` without its row fails here.
 */
import { describe, expect, test } from "bun:test"
import { ConfigError, ConfigProvider, Effect, Either, HashSet } from "effect"
import * as PathPatch from "effect/ConfigProviderPathPatch"
import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import * as NodeConfig from "../../src/config/NodeConfig.ts"
import { helpText, SETTINGS } from "../../src/config/Settings.ts"

const README = readFileSync(join(resolve(import.meta.dir, "../.."), "README.md"), "utf8")

const fromEnv = (env: Record<string, string>) =>
  Effect.runSync(Effect.either(NodeConfig.fromEnv.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))))

describe("settings: one list for --help, the README and the node", () => {
  test("the README's table is the list, row for row", () => {
    // The node's table is the one under "## Configuration"; other programs (the web chat) have their own.
    const configuration = README.slice(README.indexOf("\n## Configuration"), README.indexOf("\n## ", README.indexOf("\n## Configuration") + 1))
    const rows = configuration.split("\n").flatMap((line) => {
      const m = /^\| `([A-Z0-9_]+)` \| (.*?) \| (.*) \|$/.exec(line)
      return m === null ? [] : [{ name: m[1]!, default: m[2]!, meaning: m[3]! }]
    })
    expect(rows).toEqual([...SETTINGS])
  })

  test("the node reads exactly the listed variables", () => {
    const read = new Set<string>()
    const recording = ConfigProvider.fromFlat(ConfigProvider.makeFlat({
      load: (path) => {
        read.add(path.join("."))
        return Effect.fail(ConfigError.MissingData([...path], "unset"))
      },
      enumerateChildren: () => Effect.succeed(HashSet.empty()),
      patch: PathPatch.empty
    }))
    Effect.runSync(NodeConfig.fromEnv.pipe(Effect.withConfigProvider(recording)))
    expect([...read].sort()).toEqual(SETTINGS.map((s) => s.name).sort())
  })

  test("each default in the list is the node's own: setting it changes nothing", () => {
    const base = Either.getOrThrow(fromEnv({}))
    const checked = SETTINGS.filter((s) => s.default !== "(unset)")
    expect(checked.length).toBeGreaterThan(40)
    for (const s of checked) {
      // "16777216 (16 MiB)": the value, not its gloss.
      const value = s.default.replace(/\s*\(.*\)$/, "")
      const cfg = fromEnv({ [s.name]: value })
      expect([s.name, Either.isRight(cfg)]).toEqual([s.name, true])
      expect([s.name, Either.getOrThrow(cfg)]).toEqual([s.name, base])
    }
  })

  test("--help lists every setting with its default", () => {
    const help = helpText("9.9.9")
    expect(help).toStartWith("Demos IM node 9.9.9\n")
    for (const s of SETTINGS) expect(help).toContain(`  ${s.name} `)
    for (const s of SETTINGS) expect(help).toMatch(new RegExp(`  ${s.name} +${s.default.replaceAll("`", "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\n`))
  })
})
