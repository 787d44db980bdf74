/**
 * Any delivery the node can make: both sides sending at once, each burst delivered in any order,
 * sometimes only after the other side's next burst, sometimes twice. Every message opens exactly once
 * with its own text, a second copy is refused as a replay with the state deep-equal, and the ML-KEM
 * epochs (stepping every 3 messages here) keep advancing through it all.
 */
import { expect, test } from "bun:test"
import fc from "fast-check"
import { decodeEnvelope } from "../../../src/client/secure/Envelope.ts"
import { decrypt } from "../../../src/client/secure/Ratchet.ts"
import { SecureError } from "../../../src/client/secure/SecureError.ts"
import { pair, type Party, T0 } from "./Conversation.ts"

const Turn = fc.record({
  fromAlice: fc.boolean(),
  order: fc.constantFrom([0], [0, 1], [1, 0], [0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0], [3, 1, 0, 2], [0, 3, 2, 1]),
  late: fc.boolean(),
  duplicate: fc.boolean()
})

test("every message opens once, in any order and interleaving, and copies are refused with the state unchanged", () => {
  let highestEpoch = 0
  fc.assert(
    fc.property(fc.array(Turn, { minLength: 10, maxLength: 30 }), (turns) => {
      const { alice, bob } = pair({ everyMessages: 3, everyMs: 1e15 })
      // alice's first message opens the session before anything else happens
      expect(bob.receive(alice.send("start"))).toBe("start")
      let counter = 0
      let held: Array<() => void> = []
      const deliver = (to: Party, batch: ReadonlyArray<[string, Uint8Array]>, order: ReadonlyArray<number>, duplicate: boolean) => () => {
        for (const i of order) expect(to.receive(batch[i]![1], T0)).toBe(batch[i]![0])
        if (duplicate) {
          const before = structuredClone(to.session!)
          const copy = batch[order[0]!]![1]
          let reason = "opened"
          try {
            decrypt(to.session!, copy, T0)
          } catch (e) {
            reason = e instanceof SecureError ? e.reason : String(e)
          }
          expect(reason).toBe("Replay")
          expect(to.session).toEqual(before)
        }
      }
      for (const turn of turns) {
        const [from, to] = turn.fromAlice ? [alice, bob] : [bob, alice]
        const batch = turn.order.map(() => {
          const t = `m${counter++}`
          return [t, from.send(t, T0)] as [string, Uint8Array]
        })
        const run = deliver(to, batch, turn.order, turn.duplicate)
        const due = held
        held = []
        if (turn.late) held.push(run)
        else run()
        for (const f of due) f()
      }
      for (const f of held) f()
      highestEpoch = Math.max(highestEpoch, Math.min(alice.session!.pq.sendEpoch, bob.session!.pq.sendEpoch))
      expect(decodeEnvelope(alice.send("end")).header.epoch).toBe(alice.session!.pq.sendEpoch)
    }),
    { numRuns: 25, seed: 20261204 }
  )
  // the ML-KEM ratchet stepped through these deliveries, not beside them
  expect(highestEpoch).toBeGreaterThanOrEqual(3)
})
