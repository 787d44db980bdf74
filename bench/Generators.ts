/**
 * Load-generator processes (`loadgen.ts`), one Bun process each so that several cores' worth of
 * clients can drive the server when one client process is slower than it. Commands go over Bun IPC;
 * each process answers its commands in order.
 */
import type { Subprocess } from "bun"
import { REPO_ROOT } from "../test/support/NodeProcess.ts"

export interface Generators {
  readonly size: number
  readonly pids: ReadonlyArray<number>
  /** Sends one command to process `i` and resolves with its answer (rejects on `ok: false`). */
  readonly call: <A = Record<string, unknown>>(i: number, command: Record<string, unknown>) => Promise<A>
  /** Sends without waiting for an answer (the storm's start signal). */
  readonly post: (i: number, command: Record<string, unknown>) => void
  /** The next answer of process `i` (ask before posting what causes it). */
  readonly expect: <A = Record<string, unknown>>(i: number) => Promise<A>
  /** The same command (made per process) to all, answers in process order. */
  readonly all: <A = Record<string, unknown>>(make: (i: number) => Record<string, unknown>) => Promise<Array<A>>
  readonly stop: () => Promise<void>
}

export const spawnGenerators = async (size: number, script = "bench/loadgen.ts"): Promise<Generators> => {
  const waiting: Array<Array<(m: any) => void>> = Array.from({ length: size }, () => [])
  const procs: Array<Subprocess> = []
  for (let i = 0; i < size; i++) {
    procs.push(Bun.spawn([process.execPath, "run", script], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "inherit", "inherit"],
      ipc: (message) => waiting[i]!.shift()?.(message)
    }))
  }
  const next = (i: number) => new Promise<any>((resolve) => waiting[i]!.push(resolve))
  await Promise.all(procs.map((_, i) => next(i)))
  const call = async <A>(i: number, command: Record<string, unknown>): Promise<A> => {
    const answer = next(i)
    procs[i]!.send(command)
    const m = await answer
    if (m.ok !== true) throw new Error(`load generator ${i}: ${m.error}`)
    return m as A
  }
  return {
    size,
    pids: procs.map((p) => p.pid),
    call,
    post: (i, command) => procs[i]!.send(command),
    expect: async (i) => {
      const m = await next(i)
      if (m.ok !== true) throw new Error(`load generator ${i}: ${m.error}`)
      return m
    },
    all: <A>(make: (i: number) => Record<string, unknown>) => Promise.all(procs.map((_, i) => call<A>(i, make(i)))),
    stop: async () => {
      for (const p of procs) p.kill()
      await Promise.all(procs.map((p) => p.exited))
    }
  }
}
