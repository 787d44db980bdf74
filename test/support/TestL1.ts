import { Effect, Layer, Option } from "effect"
import { createHash } from "node:crypto"
import { type Head, L1, L1Error, type L1Transaction } from "../../src/l1/L1.ts"

/**
 * A host-supplied L1, as a larger Demos node would plug in its own chain: in memory, mined by hand,
 * and able to go down.
 */
export const makeTestL1 = (
  /** Called after every call of the chain (a test's signal that the pipeline tried it). */
  called: () => void = () => {}
) => {
  const txs = new Map<string, { tx: L1Transaction; block: number | undefined }>()
  const blocks: Array<Head> = []
  const accepted: Array<string> = []
  let down = false
  let attempts = 0
  const control = {
    setDown: (value: boolean) => {
      down = value
    },
    mine: () => {
      const number = blocks.length
      const hash = createHash("sha256").update(`${number}:${blocks[number - 1]?.hash ?? ""}`).digest("hex")
      blocks.push({ number, hash })
      for (const t of txs.values()) if (t.block === undefined) t.block = number
      return number
    },
    /** Hashes in the order the chain first accepted them. */
    accepted,
    transactions: () => [...txs.values()].map((t) => t.tx),
    attempts: () => attempts
  }
  const layer = Layer.succeed(L1, {
    name: "test",
    submit: (tx) =>
      Effect.suspend(() => {
        attempts++
        if (down) return Effect.fail(new L1Error({ message: "L1 unreachable" }))
        if (!txs.has(tx.hash)) {
          txs.set(tx.hash, { tx, block: undefined })
          accepted.push(tx.hash)
        }
        return Effect.void
      }).pipe(Effect.ensuring(Effect.sync(called))),
    inclusion: (hash) =>
      Effect.suspend(() => {
        if (down) return Effect.fail(new L1Error({ message: "L1 unreachable" }))
        const t = txs.get(hash)
        return Effect.succeed(
          t?.block === undefined ? Option.none() : Option.some({ blockNumber: t.block, blockHash: blocks[t.block]!.hash })
        )
      }),
    head: Effect.suspend(() =>
      down ? Effect.fail(new L1Error({ message: "L1 unreachable" })) : Effect.succeed(Option.fromNullable(blocks.at(-1)))
    )
  })
  return { layer, control }
}
