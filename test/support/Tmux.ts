/**
 * Real terminals for tests: a private tmux server (its own socket) whose sessions run a command, typed
 * into with send-keys and read with capture-pane.
 */
import { spawnSync } from "node:child_process"

export const available = (): boolean => spawnSync("tmux", ["-V"]).status === 0

export interface Tmux {
  run(...args: Array<string>): { readonly stdout: string; readonly status: number | null }
  /** Starts `command` in a detached session of 220×50 that stays on screen after it exits. */
  start(session: string, cwd: string, command: string): void
  screen(session: string): string
  /** Waits until the screen matches `pattern`; the error shows the screen. */
  waitFor(session: string, pattern: RegExp, ms?: number): Promise<RegExpExecArray>
  /** Types `line` literally, then Enter. */
  type(session: string, line: string): void
  kill(): void
}

export const make = (name: string): Tmux => {
  const run = (...args: Array<string>) => {
    const r = spawnSync("tmux", ["-L", name, ...args], { encoding: "utf8" })
    if (r.error !== undefined) throw r.error
    return r
  }
  const screen = (session: string): string => run("capture-pane", "-p", "-J", "-t", session, "-S", "-500").stdout
  return {
    run,
    start: (session, cwd, command) =>
      void run("new-session", "-d", "-s", session, "-x", "220", "-y", "50", "-c", cwd, command, ";", "set-option", "-t", session, "remain-on-exit", "on"),
    screen,
    waitFor: async (session, pattern, ms = 10_000) => {
      const until = Date.now() + ms
      while (true) {
        const m = pattern.exec(screen(session))
        if (m !== null) return m
        if (Date.now() > until) throw new Error(`${session}: no ${pattern} within ${ms} ms; the screen:\n${screen(session)}`)
        await Bun.sleep(50)
      }
    },
    type: (session, line) => {
      run("send-keys", "-t", session, "-l", line)
      run("send-keys", "-t", session, "Enter")
    },
    kill: () => void run("kill-server")
  }
}

/** `'…'` for sh. */
export const shellQuote = (v: string): string => `'${v.replaceAll("'", `'\\''`)}'`
