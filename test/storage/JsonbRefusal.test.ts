/**
 * `jsonbRefusal` against the database itself: every JSON text Postgres `jsonb` refuses is refused by the
 * check, so none reaches a group commit. The check may refuse more than the database only for numbers
 * (it stops at exponents of ±1000, numeric somewhere beyond).
 */
import { describe, expect, test } from "bun:test"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Exit } from "effect"
import fc from "fast-check"
import { jsonbRefusal } from "../../src/domain/JsonbRefusal.ts"
import { databases } from "../support/TestDatabase.ts"

const piece = fc.constantFrom(
  "a", "Y2lw", "é", "😀", "\\u0000", "\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud83d\\ude00", "\\uD83D\\uDE00",
  "\\ud800\\u0041", "\\\\", "\\\"", "\\\\u0000", "\\\\\\u0000", "\\n", "\\u0041", "\\u00e9", "\\/", " "
)
const str = fc.array(piece, { maxLength: 4 }).map((ps) => `"${ps.join("")}"`)
const num = fc.tuple(
  fc.constantFrom("0", "1", "-1.5", "123456789", "0.000001"),
  fc.option(fc.tuple(fc.constantFrom("e", "E"), fc.constantFrom("", "+", "-"), fc.constantFrom(0, 5, 308, 999, 1000, 1001, 5000, 16383, 20000, 131072, 999999)), { nil: undefined })
).map(([m, e]) => (e === undefined ? m : `${m}${e[0]}${e[1]}${e[2]}`))
const space = fc.constantFrom("", " ", "\n  ")
const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    str,
    num,
    fc.constantFrom("true", "false", "null"),
    fc.array(tie("value"), { maxLength: 3 }).map((vs) => `[${vs.join(",")}]`),
    tie("object")
  ) as fc.Arbitrary<string>,
  object: fc.array(fc.tuple(space, str, tie("value")), { maxLength: 4 })
    .map((ms) => `{${ms.map(([s, k, v]) => `${s}${k}:${s}${v}`).join(",")}}`) as fc.Arbitrary<string>
}))

for (const db of await databases()) {
  describe(`jsonbRefusal on ${db.name}`, () => {
    test("whatever jsonb refuses, the check refuses (fast-check, 600 texts)", () =>
      Effect.runPromise(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const samples = fc.sample(value, { numRuns: 600, seed: 20261204 }).filter((t) => {
          try {
            JSON.parse(t)
            return true
          } catch {
            return false
          }
        })
        let refusedByDb = 0
        for (const text of samples) {
          const exit = yield* Effect.exit(sql`SELECT ${text}::text::jsonb AS j`)
          const refusal = jsonbRefusal(text)
          if (Exit.isFailure(exit)) {
            refusedByDb++
            expect({ text, refusal }).toEqual({ text, refusal: expect.any(String) })
          } else if (refusal !== undefined) {
            expect({ text, refusal }).toEqual({ text, refusal: expect.stringContaining("a number") })
          }
        }
        // The generator does reach what the database refuses.
        expect(refusedByDb).toBeGreaterThan(50)
      }).pipe(Effect.provide(db.layer))), 60_000)
  })
}
