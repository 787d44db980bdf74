/**
 * Messages of one conversation that may share a millisecond timestamp. Timestamps never decrease within
 * a conversation and a history page never ends inside a group of equal ones, so paging by `before`
 * (exclusive) neither skips nor repeats; with 16 a ms a conversation carries 16,000 messages a second
 * before its clock has to run ahead of the node's.
 */
export const SAME_MILLI_MAX = 16
