/**
 * The network uid of the legacy signaling server's messages, in `l2ps_messages` and in the batch
 * pipeline. Reserved: no L2PS network may take it.
 */
export const LEGACY_UID = "legacy"
