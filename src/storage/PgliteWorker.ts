/**
 * Entry of the PGlite worker (a Bun Worker): owns one PGlite instance and runs the statements posted
 * by `PgliteWorkerClient`, one at a time in the order they arrive, posting back one answer for each.
 * The order is what keeps a transaction whole: the client posts nothing else between its BEGIN and
 * its COMMIT.
 */
import { PGlite } from "@electric-sql/pglite"
import type { Results } from "@electric-sql/pglite"
import { DURABLE_START_PARAMS, flushToDisk } from "./PgliteDurability.ts"
import { parsers } from "./PgliteParsers.ts"

export interface OpenRequest {
  readonly open: {
    readonly dataDir?: string | undefined
    /** A data directory dump (PGlite's `dumpDataDir`) to start from, in memory. */
    readonly loadDataDir?: ArrayBuffer | undefined
  }
}

export interface StatementRequest {
  readonly id: number
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
  readonly rowMode?: "array" | undefined
  /** Runs BEGIN first: a transaction's first statement carries it, saving BEGIN its own round trip. */
  readonly begin?: boolean | undefined
}

export interface CloseRequest {
  readonly close: true
}

export type WorkerRequest = OpenRequest | StatementRequest | CloseRequest

/** An error as it crosses the channel: its message and its primitive fields (SQLSTATE `code`, `detail`, …). */
export interface WorkerError {
  readonly message: string
  readonly fields: Readonly<Record<string, string | number | boolean>>
}

export type WorkerResponse =
  | { readonly id: number; readonly result: Results | Array<Results> }
  | { readonly id: number; readonly error: WorkerError }
  | { readonly opened: true }
  | { readonly openFailed: WorkerError }
  | { readonly closed: true }

declare const self: {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null
  postMessage: (message: WorkerResponse) => void
}

const toWorkerError = (cause: unknown): WorkerError => {
  if (!(cause instanceof Error)) return { message: String(cause), fields: {} }
  const fields: Record<string, string | number | boolean> = { name: cause.name }
  for (const [k, v] of Object.entries(cause)) {
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") fields[k] = v
  }
  return { message: cause.message, fields }
}

let pglite: PGlite | undefined

const run = async (request: WorkerRequest): Promise<void> => {
  if ("open" in request) {
    try {
      const { dataDir, loadDataDir } = request.open
      pglite = await PGlite.create({
        ...(dataDir === undefined ? {} : { dataDir, startParams: [...DURABLE_START_PARAMS] }),
        ...(loadDataDir === undefined ? {} : { loadDataDir: new Blob([loadDataDir]) })
      })
      if (dataDir !== undefined) {
        if (!flushToDisk(pglite)) throw new Error("PGlite's file system cannot flush to disk (no NODEFS)")
        // What PGlite wrote before its flush was real (the files of a new data directory, a recovery's).
        await pglite.exec("CHECKPOINT")
      }
      self.postMessage({ opened: true })
    } catch (cause) {
      self.postMessage({ openFailed: toWorkerError(cause) })
    }
    return
  }
  if ("close" in request) {
    await pglite?.close().catch(() => undefined)
    pglite = undefined
    self.postMessage({ closed: true })
    return
  }
  const { id, sql, params, rowMode, begin } = request
  try {
    if (pglite === undefined) throw new Error("PGlite is not open")
    if (begin === true) await pglite.exec("BEGIN")
    const options = rowMode === undefined ? { parsers } : { rowMode, parsers }
    // Without parameters node-postgres uses the simple protocol, which accepts several statements;
    // `exec` does the same, so raw migration scripts behave alike.
    const result = params.length === 0
      ? await pglite.exec(sql, options)
      : await pglite.query<Record<string, unknown>>(sql, params as Array<unknown>, options)
    self.postMessage({ id, result })
  } catch (cause) {
    self.postMessage({ id, error: toWorkerError(cause) })
  }
}

// One chain: each request starts once the one before it has finished.
let chain: Promise<void> = Promise.resolve()
self.onmessage = (event) => {
  const request = event.data
  chain = chain.then(() => run(request))
}
