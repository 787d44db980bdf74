/**
 * Starts the node the way a user does (`bun run src/main.ts` from the repo root) for end-to-end
 * tests, waits for its "listening … l2ps ws://host:port" line, and keeps every output line for
 * debugging.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Subprocess } from "bun"
import { Effect, Layer } from "effect"
import * as SqlStores from "../../src/node/SqlStores.ts"
import * as PgliteClient from "../../src/storage/PgliteClient.ts"

export const REPO_ROOT: string = path.resolve(import.meta.dir, "..", "..")

/** The line the node prints once the L2PS server listens; group 1 is the port. */
export const READY_LINE: RegExp = /listening.*l2ps ws:\/\/[^\s:]+:(\d+)/i

const HOST_IN_READY_LINE = /l2ps ws:\/\/([^\s:]+):\d+/i

export interface StartNodeOptions {
  /**
   * Added to `process.env` (a value of `undefined` removes the variable). Defaults filled in when
   * absent: `L2PS_MESSAGING_ENABLED=true`, `L2PS_MESSAGING_PORT=<free port>`, `DATA_DIR=<fresh temp dir>`.
   */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Names of further env vars to set to a free port each (unless `env` sets them), e.g. the legacy port. */
  readonly freePortEnv?: ReadonlyArray<string>
  /** How long to wait for the ready line (default 30000 ms). */
  readonly readyTimeoutMs?: number
  /** Override the command (default `[bun, "run", "src/main.ts"]`). */
  readonly cmd?: ReadonlyArray<string>
  /** Working directory (default: the repo root). */
  readonly cwd?: string
  /** Echo the node's output to this process's stderr as it arrives (default: env `NODE_TEST_ECHO=1`). */
  readonly echo?: boolean
}

export interface NodeProcess {
  readonly pid: number
  /** the L2PS port parsed from the ready line */
  readonly port: number
  /** `ws://host:port` for the L2PS server (0.0.0.0/:: mapped to 127.0.0.1) */
  readonly url: string
  /** the full environment the process was started with */
  readonly env: Readonly<Record<string, string>>
  /** `DATA_DIR` used by the process */
  readonly dataDir: string
  /** resolves with the exit code (signal exits give a non-zero code, see `signalCode`) */
  readonly exited: Promise<number>
  readonly signalCode: () => string | null
  /** every stdout/stderr line so far (stderr lines are prefixed with `[stderr] `) */
  output(): string[]
  /** `output().join("\n")` */
  outputText(): string
  /** SIGTERM and wait for exit (SIGKILL after `graceMs`, default 15000). Resolves with the exit code. */
  stop(graceMs?: number): Promise<number>
  /** SIGKILL and wait for exit. */
  kill(): Promise<number>
  /** Stop this process if still running, then start a new one with the same env and data dir. */
  restart(): Promise<NodeProcess>
  /** Stop (SIGKILL) if running and delete the data dir if `startNode` created it. */
  dispose(): Promise<void>
}

/** A free TCP port on 127.0.0.1, chosen by the OS. */
/**
 * A port nothing listens on, below the kernel's ephemeral range (32768-60999 here): a port the kernel
 * handed out for `port: 0` may be taken as the local port of an outgoing connection (a test's
 * WebSocket, a database connection) before the node binds it, and a taken port stops the node.
 * Never the same port twice in one test process.
 */
export const freePort = (): number => {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (handedOut.has(port)) continue
    if (bindable(port, "0.0.0.0") && bindable(port, "127.0.0.1")) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error("freePort: no free port in 20000-31999 after 200 tries")
}
const handedOut = new Set<number>()
const bindable = (port: number, hostname: string): boolean => {
  try {
    Bun.listen({ hostname, port, socket: { data() {} } }).stop(true)
    return true
  } catch {
    return false
  }
}

/** The bun binary: this very process when running under bun, else `bun` from PATH. */
export const bunBinary = (): string =>
  typeof process.versions.bun === "string" ? process.execPath : "bun"

const live = new Set<Subprocess>()
let exitHookInstalled = false
const installExitHook = (): void => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const p of live) {
      try {
        p.kill("SIGKILL")
      } catch {
        // already gone
      }
    }
  })
}

const buildEnv = (
  overrides: Readonly<Record<string, string | undefined>>,
): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  return env
}

interface Launch {
  readonly cmd: ReadonlyArray<string>
  readonly cwd: string
  readonly env: Record<string, string>
  readonly readyTimeoutMs: number
  readonly echo: boolean
  readonly ownedDataDir: string | null
}

const readLines = async (
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> => {
  const decoder = new TextDecoder()
  let rest = ""
  const reader = stream.getReader()
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      rest += decoder.decode(value, { stream: true })
      let i: number
      while ((i = rest.indexOf("\n")) >= 0) {
        onLine(rest.slice(0, i).replace(/\r$/, ""))
        rest = rest.slice(i + 1)
      }
    }
    rest += decoder.decode()
  } catch {
    // stream torn down with the process
  } finally {
    if (rest.length > 0) onLine(rest)
  }
}

const launch = async (l: Launch): Promise<NodeProcess> => {
  installExitHook()
  const lines: string[] = []
  let ready: ((m: { port: number; host: string }) => void) | null = null
  const readyPromise = new Promise<{ port: number; host: string }>((r) => {
    ready = r
  })

  const onLine = (stream: "stdout" | "stderr") => (line: string) => {
    const tagged = stream === "stderr" ? `[stderr] ${line}` : line
    lines.push(tagged)
    if (l.echo) process.stderr.write(`[node] ${tagged}\n`)
    const m = READY_LINE.exec(line)
    if (m && ready) {
      const host = HOST_IN_READY_LINE.exec(line)?.[1] ?? "127.0.0.1"
      const r = ready
      ready = null
      r({ port: Number(m[1]), host })
    }
  }

  const proc = Bun.spawn([...l.cmd], {
    cwd: l.cwd,
    env: l.env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  })
  live.add(proc)
  const stdoutDone = readLines(proc.stdout, onLine("stdout"))
  const stderrDone = readLines(proc.stderr, onLine("stderr"))
  const exited: Promise<number> = proc.exited.then(async (code) => {
    live.delete(proc)
    await Promise.all([stdoutDone, stderrDone])
    return code
  })

  const dataDir = l.env["DATA_DIR"] ?? ""
  const text = (): string => lines.join("\n")

  let timer: ReturnType<typeof setTimeout> | null = null
  const outcome = await Promise.race([
    readyPromise.then((r) => ({ kind: "ready" as const, ...r })),
    exited.then((code) => ({ kind: "exited" as const, code })),
    new Promise<{ kind: "timeout" }>((r) => {
      timer = setTimeout(() => r({ kind: "timeout" }), l.readyTimeoutMs)
    }),
  ])
  if (timer) clearTimeout(timer)

  if (outcome.kind !== "ready") {
    if (outcome.kind === "timeout") {
      proc.kill("SIGKILL")
      await exited
    }
    const why =
      outcome.kind === "timeout"
        ? `no line matching ${READY_LINE} within ${l.readyTimeoutMs} ms`
        : `process exited with code ${outcome.code} (signal ${proc.signalCode ?? "none"}) before becoming ready`
    throw new Error(
      `NodeProcess: ${l.cmd.join(" ")} (cwd ${l.cwd}): ${why}\n--- node output ---\n${text()}\n--- end ---`,
    )
  }

  const host = outcome.host === "0.0.0.0" || outcome.host === "::" || outcome.host === "[::]" ? "127.0.0.1" : outcome.host
  const isRunning = (): boolean => proc.exitCode === null && proc.signalCode === null

  const stop = async (graceMs = 15000): Promise<number> => {
    if (!isRunning()) return exited
    proc.kill("SIGTERM")
    const t = setTimeout(() => {
      lines.push(`[harness] no exit ${graceMs} ms after SIGTERM: sending SIGKILL`)
      proc.kill("SIGKILL")
    }, graceMs)
    const code = await exited
    clearTimeout(t)
    return code
  }

  const kill = async (): Promise<number> => {
    if (isRunning()) proc.kill("SIGKILL")
    return exited
  }

  const node: NodeProcess = {
    pid: proc.pid,
    port: outcome.port,
    url: `ws://${host}:${outcome.port}`,
    env: l.env,
    dataDir,
    exited,
    signalCode: () => (proc.signalCode === null ? null : String(proc.signalCode)),
    output: () => [...lines],
    outputText: text,
    stop,
    kill,
    async restart() {
      await stop()
      return launch(l)
    },
    async dispose() {
      await kill()
      if (l.ownedDataDir) fs.rmSync(l.ownedDataDir, { recursive: true, force: true })
    },
  }
  return node
}

/**
 * A migrated PGlite data directory, made once per test process and copied into each fresh `DATA_DIR`:
 * a node then opens a database instead of creating one (initdb and the migrations took 2-4 s of every
 * node's start). Undefined when it cannot be made: nodes then start from nothing, as before.
 */
let template: Promise<string | undefined> | undefined
const pgliteTemplate = (): Promise<string | undefined> =>
  template ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "imnode-template-"))
    process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }))
    const pglite = path.join(dir, "pglite")
    fs.mkdirSync(pglite, { recursive: true, mode: 0o700 })
    await Effect.runPromise(Effect.scoped(Layer.build(SqlStores.layer.pipe(Layer.provideMerge(PgliteClient.layer({ dataDir: pglite }))))))
    return pglite
  })().catch(() => undefined)

/**
 * Start the node. Throws (with the whole output in the message) if it exits or does not print the
 * ready line within the timeout.
 */
export const startNode = async (options: StartNodeOptions = {}): Promise<NodeProcess> => {
  const overrides: Record<string, string | undefined> = { ...(options.env ?? {}) }
  let ownedDataDir: string | null = null
  if (!("DATA_DIR" in overrides)) {
    ownedDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "imnode-test-"))
    overrides["DATA_DIR"] = ownedDataDir
    // The repository's own node on PGlite: its database from the template.
    const onPglite = !("DATABASE_URL" in overrides ? overrides["DATABASE_URL"] : process.env["DATABASE_URL"])
    if (onPglite && options.cmd === undefined && (options.cwd ?? REPO_ROOT) === REPO_ROOT) {
      const tpl = await pgliteTemplate()
      if (tpl !== undefined) fs.cpSync(tpl, path.join(ownedDataDir, "pglite"), { recursive: true })
    }
  }
  if (!("L2PS_MESSAGING_ENABLED" in overrides)) overrides["L2PS_MESSAGING_ENABLED"] = "true"
  if (!("L2PS_MESSAGING_PORT" in overrides)) overrides["L2PS_MESSAGING_PORT"] = String(freePort())
  for (const name of options.freePortEnv ?? []) {
    if (!(name in overrides)) overrides[name] = String(freePort())
  }
  try {
    return await launch({
      cmd: options.cmd ?? [bunBinary(), "run", "src/main.ts"],
      cwd: options.cwd ?? REPO_ROOT,
      env: buildEnv(overrides),
      readyTimeoutMs: options.readyTimeoutMs ?? 30000,
      echo: options.echo ?? process.env["NODE_TEST_ECHO"] === "1",
      ownedDataDir,
    })
  } catch (e) {
    if (ownedDataDir) fs.rmSync(ownedDataDir, { recursive: true, force: true })
    throw e
  }
}

export interface NodeRun {
  readonly code: number
  readonly stdout: ReadonlyArray<string>
  readonly stderr: ReadonlyArray<string>
}

/**
 * Runs the node (or `args` after `src/main.ts`, e.g. `--help`) to its exit, as a user would, with the
 * same defaults as `startNode` (a fresh `DATA_DIR`, free ports); for start-up mistakes and flags.
 */
export const runNode = async (
  options: { readonly env?: Readonly<Record<string, string | undefined>>; readonly args?: ReadonlyArray<string>; readonly timeoutMs?: number; readonly cmd?: ReadonlyArray<string> } = {},
): Promise<NodeRun> => {
  const overrides: Record<string, string | undefined> = { ...(options.env ?? {}) }
  let ownedDataDir: string | null = null
  if (!("DATA_DIR" in overrides)) {
    ownedDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "imnode-test-"))
    overrides["DATA_DIR"] = ownedDataDir
  }
  for (const name of ["L2PS_MESSAGING_PORT", "SIGNALING_PORT", "ADMIN_PORT"]) {
    if (!(name in overrides)) overrides[name] = String(freePort())
  }
  const proc = Bun.spawn([...(options.cmd ?? [bunBinary(), "run", "src/main.ts"]), ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env: buildEnv(overrides),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  })
  live.add(proc)
  const timer = setTimeout(() => proc.kill("SIGKILL"), options.timeoutMs ?? 30000)
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ])
    const lines = (text: string) => text.split("\n").filter((l) => l.length > 0)
    return { code, stdout: lines(stdout), stderr: lines(stderr) }
  } finally {
    clearTimeout(timer)
    live.delete(proc)
    if (ownedDataDir) fs.rmSync(ownedDataDir, { recursive: true, force: true })
  }
}
