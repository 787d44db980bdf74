/**
 * A throwaway PostgreSQL cluster for fault tests that must stop and start the server under a running
 * node. It never touches the shared server on 127.0.0.1:5432: `initdb` into a fresh temp directory,
 * listen on a free port (and a socket in that directory), trust auth, user `postgres`.
 *
 * Running as root, every Postgres tool runs as the `postgres` OS user (`runuser`); otherwise as the
 * current user. `available()` says why the cluster cannot be made here, so callers can skip outside
 * CI and fail in CI.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "./NodeProcess.ts"

const PG_BIN_ROOT = "/usr/lib/postgresql"

/** The newest `/usr/lib/postgresql/<v>/bin` with initdb and pg_ctl, or `PG_BIN` if set. */
const pgBin = (): string | undefined => {
  const fromEnv = process.env["PG_BIN"]
  if (fromEnv) return fromEnv
  if (!fs.existsSync(PG_BIN_ROOT)) return undefined
  const versions = fs.readdirSync(PG_BIN_ROOT).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
  for (const v of versions) {
    const bin = path.join(PG_BIN_ROOT, v, "bin")
    if (fs.existsSync(path.join(bin, "initdb")) && fs.existsSync(path.join(bin, "pg_ctl"))) return bin
  }
  return undefined
}

const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0

const hasPostgresUser = (): boolean => spawnSync("id", ["-u", "postgres"]).status === 0

/** `undefined` when a throwaway cluster can be made here, else the reason it cannot. */
export const unavailableReason = (): string | undefined => {
  const bin = pgBin()
  if (bin === undefined) return `no PostgreSQL binaries under ${PG_BIN_ROOT} (set PG_BIN)`
  if (isRoot()) {
    if (!hasPostgresUser()) return "running as root but there is no postgres OS user for initdb"
    if (spawnSync("runuser", ["--help"]).error !== undefined) return "running as root but runuser is missing"
  }
  return undefined
}

interface Run {
  readonly status: number | null
  readonly output: string
}

export interface ThrowawayPostgres {
  readonly port: number
  readonly dir: string
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly adminUrl: string
  /** A URL for database `name` on this cluster. */
  url(name: string): string
  /** Starts the server and waits until it accepts connections. */
  start(): Promise<void>
  /** Stops the server: `immediate` (crash-like, recovery on next start) or `fast`. */
  stop(mode?: "immediate" | "fast"): Promise<void>
  /** The server log so far (for failure messages). */
  log(): string
  /** Stops the server if running and deletes the cluster directory. Idempotent. */
  remove(): Promise<void>
}

/**
 * Creates (initdb) and starts a cluster in a fresh temp directory. Throws with the tool output if
 * anything fails; call `unavailableReason()` first to skip cleanly where the tooling is missing.
 */
export const create = async (): Promise<ThrowawayPostgres> => {
  const bin = pgBin()
  if (bin === undefined) throw new Error(unavailableReason())
  const root = isRoot()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "im-fault-pg-"))
  const data = path.join(dir, "data")
  const logFile = path.join(dir, "server.log")
  if (root) {
    fs.chmodSync(dir, 0o755)
    spawnSync("chown", ["postgres:postgres", dir])
  }
  // Tools run without a shell; as root they run as the postgres user.
  const tool = (name: string, args: ReadonlyArray<string>, timeoutMs = 60_000): Promise<Run> =>
    new Promise((resolve) => {
      const cmd = root ? ["runuser", "-u", "postgres", "--", path.join(bin, name), ...args] : [path.join(bin, name), ...args]
      const proc = Bun.spawn(cmd, { cwd: dir, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, LC_ALL: "C" } })
      const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs)
      void Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]).then(([out, err, status]) => {
        clearTimeout(timer)
        resolve({ status, output: `${out}${err}` })
      })
    })
  const must = async (name: string, args: ReadonlyArray<string>, timeoutMs?: number): Promise<void> => {
    const r = await tool(name, args, timeoutMs)
    if (r.status !== 0) {
      throw new Error(`ThrowawayPostgres: ${name} ${args.join(" ")} exited ${r.status}\n${r.output}\n--- server log ---\n${readLog()}`)
    }
  }
  const readLog = (): string => {
    try {
      return fs.readFileSync(logFile, "utf8")
    } catch {
      return ""
    }
  }

  const port = freePort()
  let running = false
  const pgCtl = (args: ReadonlyArray<string>) => ["-D", data, ...args]

  const cluster: ThrowawayPostgres = {
    port,
    dir,
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    url: (name) => `postgres://postgres@127.0.0.1:${port}/${name}`,
    async start() {
      // -w waits until the server accepts connections.
      await must("pg_ctl", pgCtl([
        "-w",
        "-t", "60",
        "-l", logFile,
        "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=50`,
        "start"
      ]))
      running = true
    },
    async stop(mode = "immediate") {
      await must("pg_ctl", pgCtl(["-w", "-t", "60", "-m", mode, "stop"]))
      running = false
    },
    log: readLog,
    async remove() {
      if (running) {
        await tool("pg_ctl", pgCtl(["-w", "-t", "30", "-m", "immediate", "stop"]))
        running = false
      }
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }

  try {
    await must("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"], 120_000)
    await cluster.start()
  } catch (e) {
    await cluster.remove()
    throw e
  }
  return cluster
}
