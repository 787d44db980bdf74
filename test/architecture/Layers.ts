import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, normalize, relative } from "node:path"

/**
 * The order of `src/`'s folders, lowest first. A module may import from its own folder, from a folder
 * of its own rank (as long as the folders form no cycle) and from any lower rank, never from a higher
 * one. `.` is `src/` itself (`index.ts`, `main.ts`).
 */
export const LAYERS: ReadonlyArray<ReadonlyArray<string>> = [
  ["domain"],
  ["config"],
  ["internal"],
  ["crypto", "storage", "validators", "l1", "transport"],
  ["limits"],
  ["connection"],
  ["l2ps", "relay", "legacy"],
  ["ops"],
  ["node"],
  ["."]
]

/**
 * Folders outside the server's order: the client library ships to users without the server, so it and
 * the terminal and web chats on top of it may import only these folders (and their own).
 */
export const APART: Readonly<Record<string, ReadonlyArray<string>>> = {
  client: ["domain"],
  cli: ["domain", "client"],
  web: ["domain", "client"]
}

/** One import: both ends as paths relative to `src/`, e.g. `relay/RelayConnection.ts` → `domain/Frames.ts`. */
export interface Edge {
  readonly from: string
  readonly to: string
}

/** `relay/handlers/Send.ts` → `relay`; a file directly in `src/` → `.`. */
export const folderOf = (path: string): string => {
  const slash = path.indexOf("/")
  return slash === -1 ? "." : path.slice(0, slash)
}

const rankOf = new Map(LAYERS.flatMap((folders, rank) => folders.map((f) => [f, rank] as const)))

// Anchored at a line start so that prose in comments ("… from the store") is not read as an import;
// `[^;"'`]*?` spans the lines of a multi-line `import { a,\n b } from "…"`.
const STATIC = /^[ \t]*(?:import|export)\s+(?:type\s+)?(?:[^;"'`]*?\s+from\s*)?["']([^"']+)["']/gm
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g

/** The module specifiers a file's text imports or re-exports, in order of appearance. */
export const specifiersOf = (text: string): ReadonlyArray<string> => {
  const found: Array<[number, string]> = []
  for (const m of text.matchAll(STATIC)) found.push([m.index, m[1]!])
  for (const m of text.matchAll(DYNAMIC)) found.push([m.index, m[1]!])
  return found.sort((a, b) => a[0] - b[0]).map(([, s]) => s)
}

/**
 * The imports between modules of `src/` (relative specifiers that stay inside it). Packages, and files
 * outside `src/` (`package.json`, `migrations/`), are not part of the order.
 */
export const edgesOf = (file: string, text: string): ReadonlyArray<Edge> =>
  specifiersOf(text)
    .filter((s) => s.startsWith("."))
    .map((s) => ({ from: file, to: normalize(join(dirname(file), s)) }))
    .filter((e) => !e.to.startsWith(".."))

/** Every `.ts` file under `root`, relative to it. */
export const filesUnder = (root: string): ReadonlyArray<string> =>
  (readdirSync(root, { recursive: true }) as Array<string>)
    .filter((f) => f.endsWith(".ts"))
    .map((f) => relative(root, join(root, f)))
    .sort()

/** The imports of every module under `root` (normally `src/`). */
export const importsUnder = (root: string): ReadonlyArray<Edge> =>
  filesUnder(root).flatMap((f) => edgesOf(f, readFileSync(join(root, f), "utf8")))

const describeRank = (folder: string) => `${folder} (layer ${rankOf.get(folder)! + 1} of ${LAYERS.length})`

/** Why `edge` breaks the order, or undefined when it keeps it. */
const breach = ({ from, to }: Edge): string | undefined => {
  const a = folderOf(from)
  const b = folderOf(to)
  if (a === b) return undefined
  const apart = APART[a]
  if (apart !== undefined) {
    return apart.includes(b) ? undefined : `${from} imports ${to}: ${a} may import only ${apart.join(", ")}`
  }
  if (APART[b] !== undefined) return `${from} imports ${to}: ${b} is outside the server's layers`
  const ra = rankOf.get(a)
  const rb = rankOf.get(b)
  if (ra === undefined) return `${from}: folder ${a} has no layer (add it to LAYERS)`
  if (rb === undefined) return `${from} imports ${to}: folder ${b} has no layer (add it to LAYERS)`
  return rb > ra ? `${from} imports ${to}: ${describeRank(a)} may not import ${describeRank(b)}` : undefined
}

/** Folder cycles (strongly connected components of more than one folder), each with the imports that close it. */
const cycles = (edges: ReadonlyArray<Edge>): ReadonlyArray<string> => {
  const out = new Map<string, Map<string, Edge>>()
  for (const e of edges) {
    const a = folderOf(e.from)
    const b = folderOf(e.to)
    if (a === b) continue
    const next = out.get(a) ?? new Map<string, Edge>()
    if (!next.has(b)) next.set(b, e)
    out.set(a, next)
  }
  // Tarjan's algorithm; a handful of folders, so recursion depth is no concern.
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const components: Array<Array<string>> = []
  const visit = (v: string) => {
    index.set(v, index.size)
    low.set(v, index.get(v)!)
    stack.push(v)
    onStack.add(v)
    for (const w of out.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: Array<string> = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) components.push(component.sort())
    }
  }
  for (const v of [...out.keys()].sort()) if (!index.has(v)) visit(v)
  return components.map((component) => {
    const inside = new Set(component)
    const closing = component.flatMap((a) =>
      [...(out.get(a) ?? new Map<string, Edge>()).entries()]
        .filter(([b]) => inside.has(b))
        .map(([, e]) => `${e.from} imports ${e.to}`)
    )
    return `folder cycle ${component.join(", ")}: ${closing.join("; ")}`
  })
}

/** Every import that points up the order or out of bounds, then every folder cycle; empty when the order holds. */
export const checkLayers = (edges: ReadonlyArray<Edge>): ReadonlyArray<string> => [
  ...edges.flatMap((e) => {
    const why = breach(e)
    return why === undefined ? [] : [why]
  }),
  ...cycles(edges)
]
