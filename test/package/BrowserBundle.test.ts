/**
 * The browser entry bundles for browsers with no Node module: a plugin records every import of a Node
 * builtin (`node:fs`, `fs`, `crypto`…) the bundler meets while following the entry's imports.
 */
import { describe, expect, test } from "bun:test"
import { builtinModules } from "node:module"
import { join } from "node:path"

const CLIENT = join(import.meta.dir, "../../src/client")
const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))

/** Bundles `entry` for browsers; the Node builtins it imports, with who imports them. */
const bundleForBrowser = async (entry: string) => {
  const found: Array<string> = []
  const result = await Bun.build({
    entrypoints: [entry],
    target: "browser",
    plugins: [{
      name: "no-node-builtins",
      setup(build) {
        build.onResolve({ filter: /.*/ }, (args) => {
          if (BUILTINS.has(args.path) || args.path.startsWith("node:")) found.push(`${args.importer} imports ${args.path}`)
          return undefined
        })
      }
    }]
  })
  const text = result.success ? await result.outputs[0]!.text() : ""
  return { found, text, logs: result.logs }
}

describe("browser entry", () => {
  test("bundles with no Node builtin reachable from it", async () => {
    const { found, text } = await bundleForBrowser(join(CLIENT, "browser.ts"))
    expect(found).toEqual([])
    expect(text).toContain("indexedDB")
  })

  test("the check sees a builtin: the Node entry (a folder on disk) imports node:fs", async () => {
    const { found } = await bundleForBrowser(join(CLIENT, "index.ts"))
    expect(found.some((f) => f.endsWith("imports node:fs"))).toBe(true)
  })

  test("stays lean: at most 150 KB gzipped, minified", async () => {
    // Built as an app builds it: any resolve plugin (such as the check above) makes Bun keep modules
    // it would otherwise drop as side-effect free (+40 KB minified), which no app ships.
    const built = await Bun.build({ entrypoints: [join(CLIENT, "browser.ts")], target: "browser", minify: true })
    const text = built.success ? await built.outputs[0]!.text() : ""
    const gzipped = Bun.gzipSync(new TextEncoder().encode(text), { level: 9 }).length
    expect(gzipped).toBeLessThanOrEqual(150 * 1024)
  })
})
