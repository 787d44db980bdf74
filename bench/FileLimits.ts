/**
 * The sessions scenario holds up to 100,000 sockets: each is a file descriptor in the node and one in a
 * load generator, and the kernel gives a (source, destination) pair of loopback addresses only the
 * ephemeral port range (~28,000 ports here). The bench raises its own open-file limit (the node and
 * the generators it starts inherit it) and spreads the sockets over several loopback addresses.
 */
import * as fs from "node:fs"

/**
 * Sockets per destination address: one pair of addresses has ~28,000 ephemeral ports, and on a shared
 * machine others' sockets and TIME_WAITs hold many of them (19,000 sockets to one address failed to
 * connect here, 4 × 4,750 did not).
 */
const SOCKETS_PER_LOOPBACK = 5_000

/** Loopback addresses (127.0.0.1, 127.0.0.2, …) the servers listen on and the clients spread over. */
export const loopbacksFor = (sockets: number): number => Math.max(1, Math.ceil(sockets / SOCKETS_PER_LOOPBACK))

/** The i-th loopback address, 1-based: 127.0.0.i. */
export const loopback = (i: number): string => `127.0.0.${i}`

/** `ws://127.0.0.1:port` with the host swapped for the i-th loopback address (0-based). */
export const onLoopback = (url: string, i: number): string => {
  const u = new URL(url)
  u.hostname = loopback(1 + i)
  return u.toString().replace(/\/$/, "")
}

/** Open files the node needs beside its sockets (its database pool, its files, Bun's own), with room. */
const NODE_FILES = 500

const limitsOf = (pid: number): { soft: number; hard: number } => {
  const line = fs.readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").find((l) => l.startsWith("Max open files"))!
  const [soft, hard] = line.replace("Max open files", "").trim().split(/\s+/).map((v) => (v === "unlimited" ? Number.POSITIVE_INFINITY : Number(v)))
  return { soft: soft!, hard: hard! }
}

/**
 * Raises this process's open-file limit to `wanted` (`prlimit`, which can raise the hard limit too
 * where the bench may: root, or CAP_SYS_RESOURCE), else its soft limit to the hard one. Returns the
 * soft limit it got: what the children started afterwards inherit.
 */
export const raiseFileLimit = (wanted: number): number => {
  const now = limitsOf(process.pid)
  if (now.soft >= wanted) return now.soft
  const nrOpen = Number(fs.readFileSync("/proc/sys/fs/nr_open", "utf8"))
  const target = Math.min(wanted, nrOpen)
  const raise = (soft: number, hard: number) =>
    Bun.spawnSync(["prlimit", `--pid=${process.pid}`, `--nofile=${soft}:${hard}`], { stdout: "ignore", stderr: "ignore" }).exitCode === 0
  if (!raise(target, Math.max(target, now.hard)) && now.hard > now.soft) raise(Math.min(now.hard, target), now.hard)
  return limitsOf(process.pid).soft
}

/**
 * Raises the limit for `wanted` sessions and says how many fit: the node holds one file per session,
 * so where the hard limit is below that (a container without CAP_SYS_RESOURCE) the scenario is cut to
 * the limit, in thousands, and `note` says why.
 */
export const sessionsThatFit = (wanted: number): { sessions: number; fileLimit: number; note: string | undefined } => {
  const fileLimit = raiseFileLimit(wanted + NODE_FILES)
  if (fileLimit >= wanted + NODE_FILES) return { sessions: wanted, fileLimit, note: undefined }
  const sessions = Math.max(1000, Math.floor((fileLimit - NODE_FILES) / 1000) * 1000)
  const hard = limitsOf(process.pid).hard
  return {
    sessions,
    fileLimit,
    note: `${wanted.toLocaleString("en-US")} sessions need ${(wanted + NODE_FILES).toLocaleString("en-US")} open files in the node; this process may open ${fileLimit.toLocaleString("en-US")} (hard limit ${hard}, not raisable here: no CAP_SYS_RESOURCE), so ${sessions.toLocaleString("en-US")} sessions are held`
  }
}
