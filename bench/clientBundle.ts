/**
 * The client's browser entry bundled as an app would (`bun build --target browser --minify`): its
 * size minified and gzipped, and how much of it each package takes.
 *   bun run bench/clientBundle.ts [--entry src/client/browser.ts]
 */
import * as path from "node:path"

const i = process.argv.indexOf("--entry")
const entry = path.resolve(i >= 0 ? process.argv[i + 1]! : path.join(import.meta.dir, "../src/client/browser.ts"))
const built = await Bun.build({ entrypoints: [entry], target: "browser", minify: true, metafile: true })
if (!built.success) throw new Error(built.logs.join("\n"))
const text = await built.outputs[0]!.text()
const gzip = (s: string) => Bun.gzipSync(new TextEncoder().encode(s), { level: 9 }).length

/** node_modules/<package> (scoped: two segments), or src/<folder> for our own modules. */
const groupOf = (file: string) => {
  const nm = file.lastIndexOf("node_modules/")
  if (nm < 0) return file.replace(/^.*?(src\/[^/]+)\/.*$/, "$1")
  const parts = file.slice(nm + "node_modules/".length).split("/")
  return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!
}
const byGroup = new Map<string, number>()
for (const output of Object.values(built.metafile!.outputs)) {
  for (const [file, input] of Object.entries(output.inputs)) byGroup.set(groupOf(file), (byGroup.get(groupOf(file)) ?? 0) + input.bytesInOutput)
}
const kb = (n: number) => Math.round(n / 102.4) / 10
console.log(JSON.stringify({
  entry: path.relative(process.cwd(), entry),
  minifiedKB: kb(text.length),
  gzippedKB: kb(gzip(text)),
  minifiedKBByPackage: Object.fromEntries([...byGroup].sort((a, b) => b[1] - a[1]).map(([g, n]) => [g, kb(n)]))
}))
