import { types } from "@electric-sql/pglite"

/** The OID of `int8[]`, which PGlite's `types` does not name. */
const INT8_ARRAY = 1016

/**
 * Storage code reads int8 columns (bigserial ids, millisecond timestamps, counts) as JS numbers.
 * PGlite's default gives a BigInt above 2^53 and a number below, so force one type, like
 * node-postgres' parseInt8. Passed per query, not per instance, so that instances we did not
 * create (clones, `fromInstance`) behave the same.
 */
export const parsers = {
  [types.INT8]: Number,
  [INT8_ARRAY]: (value: string) => types.arrayParser(value, Number, INT8_ARRAY)
}
