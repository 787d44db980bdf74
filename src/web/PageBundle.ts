/**
 * The page as the server hands it out: its HTML and CSS as written, and its script bundled from
 * `page/main.ts` for browsers (`bun build --target browser`, minified) when the server starts.
 */
import * as path from "node:path"

export interface PageBundle {
  readonly html: string
  readonly css: string
  readonly js: string
  /** the modules bundled into `js` (`node:…` for any Node module the bundler had to stand in for) */
  readonly modules: ReadonlyArray<string>
}

const PAGE = path.join(import.meta.dir, "page")

export const build = async (): Promise<PageBundle> => {
  const built = await Bun.build({ entrypoints: [path.join(PAGE, "main.ts")], target: "browser", minify: true, format: "esm", metafile: true })
  if (!built.success) throw new Error(`the page does not build:\n${built.logs.map(String).join("\n")}`)
  const [js] = built.outputs
  if (js === undefined) throw new Error("the page's build gave no script")
  return {
    html: await Bun.file(path.join(PAGE, "index.html")).text(),
    css: await Bun.file(path.join(PAGE, "style.css")).text(),
    js: await js.text(),
    modules: Object.keys(built.metafile?.inputs ?? {})
  }
}
