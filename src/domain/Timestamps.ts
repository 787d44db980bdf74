/**
 * Messages of one conversation that may share a millisecond timestamp. Timestamps never decrease within
 * a conversation and a history page never ends inside a group of equal ones, so paging by `before`
 * (exclusive) neither skips nor repeats; with 16 a ms a conversation carries 16,000 messages a second
 * before its clock has to run ahead of the node's.
 */
export const SAME_MILLI_MAX = 16

/** Most a message's timestamp may run ahead of the node's clock; past it the message is refused. */
export const MAX_AHEAD_MILLIS = 1000

/**
 * Messages a second one conversation carries when its timestamps are distinct (on nodes sharing a
 * database, and on the legacy server) before they would run past `MAX_AHEAD_MILLIS`.
 */
export const DISTINCT_MAX_PER_SECOND = 1000
