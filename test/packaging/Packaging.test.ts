/**
 * What an image build sends to the daemon, what compose refuses to start without, and the licence:
 * read from the files themselves (the tests run no Docker daemon).
 */
import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import pkg from "../../package.json" with { type: "json" }

const ROOT = resolve(import.meta.dir, "../..")
const read = (path: string) => readFileSync(join(ROOT, path), "utf8")

/** Docker's rule: a path is left out when it, or a folder above it, matches a pattern (no `!` used here). */
const ignoredBy = (patterns: ReadonlyArray<string>) => (path: string) => {
  const parts = path.split("/")
  return parts.some((_, i) => {
    const prefix = parts.slice(0, i + 1).join("/")
    return patterns.some((p) => new Bun.Glob(p).match(prefix))
  })
}

describe("packaging", () => {
  test(".dockerignore keeps dependencies, data, node keys and history out of the build context", () => {
    const patterns = read(".dockerignore").split("\n").map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith("#"))
    expect(patterns.some((p) => p.startsWith("!"))).toBe(false)
    const ignored = ignoredBy(patterns)
    for (const path of [
      "node_modules/effect/package.json",
      "bench/node_modules/x/index.js",
      "data/pglite/PG_VERSION",
      "data/node-key.json",
      "node-key.json",
      "elsewhere/data/node-key.json",
      "some/dir/node-key.json",
      ".git/HEAD",
      "test/interop/.sdk/package.json",
      ".env"
    ]) expect([path, ignored(path)]).toEqual([path, true])
    // …and what the Dockerfile copies still goes.
    for (const path of ["package.json", "package-lock.json", "tsconfig.json", "src/main.ts", "migrations/0001_messages.ts"]) {
      expect([path, ignored(path)]).toEqual([path, false])
    }
  })

  test("compose refuses to start without POSTGRES_PASSWORD or ADMIN_TOKEN and runs the image the README builds", () => {
    const compose = read("docker/compose.yml")
    const uses = [...compose.matchAll(/\$\{POSTGRES_PASSWORD([^}]*)\}/g)].map((m) => m[1]!)
    expect(uses.length).toBeGreaterThanOrEqual(2)
    for (const use of uses) expect(use).toMatch(/^:\?\S/)
    expect(compose).not.toContain("change-me")
    // The admin port it publishes answers only with a token.
    expect(compose).toMatch(/^      ADMIN_HOST: 0\.0\.0\.0$/m)
    expect(compose).toMatch(/^      ADMIN_TOKEN: \$\{ADMIN_TOKEN:\?\S/m)
    expect(compose).toContain(`"127.0.0.1:9464:9464"`)
    const built = /docker build -f docker\/Dockerfile -t (\S+) \./.exec(read("README.md"))
    expect(built).not.toBeNull()
    expect(compose).toMatch(new RegExp(`^    image: ${built![1]}$`, "m"))
  })

  test("the package names its licence, and LICENSE is that licence", () => {
    expect(pkg.license).toBe("MIT")
    expect(read("LICENSE")).toStartWith("MIT License")
    const changelog = read("CHANGELOG.md")
    expect(changelog).toContain("## [Unreleased]")
  })
})
