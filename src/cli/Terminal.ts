import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as readline from "node:readline"

/** Lines in, lines out, with the prompt kept at the bottom while messages arrive. */
export interface Terminal {
  readonly say: (line: string) => Effect.Effect<void>
  readonly lines: Stream.Stream<string>
  /** Asks without echoing what is typed (on a TTY). */
  readonly secret: (question: string) => Effect.Effect<string>
  readonly close: Effect.Effect<void>
}

export const make: Effect.Effect<Terminal, never, Scope.Scope> = Effect.gen(function*() {
  const out = process.stdout
  const tty = process.stdin.isTTY === true
  const rl = yield* Effect.acquireRelease(
    Effect.sync(() => readline.createInterface({ input: process.stdin, output: out, prompt: "> ", terminal: tty })),
    (rl) => Effect.sync(() => rl.close())
  )
  let muted = false
  const writer = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WritableStream }
  const original = writer._writeToOutput.bind(rl)
  writer._writeToOutput = (s: string) => {
    if (!muted) original(s)
  }
  let closed = false
  rl.on("close", () => void (closed = true))
  rl.on("SIGINT", () => rl.close())

  const say = (line: string) =>
    Effect.sync(() => {
      if (closed) return void out.write(line + "\n")
      if (tty) {
        readline.clearLine(out, 0)
        readline.cursorTo(out, 0)
      }
      out.write(line + "\n")
      rl.prompt(true)
    })

  const lines = Stream.async<string>((emit) => {
    rl.on("line", (line) => void emit.single(line))
    rl.on("close", () => void emit.end())
    rl.prompt()
  })

  const secret = (question: string) =>
    Effect.async<string>((resume) => {
      rl.question(question, (answer) => {
        muted = false
        out.write("\n")
        resume(Effect.succeed(answer))
      })
      muted = tty
    })

  return { say, lines, secret, close: Effect.sync(() => rl.close()) }
})
