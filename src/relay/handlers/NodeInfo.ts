import type { Envelope } from "../../domain/Frames.ts"
import { encodePayload } from "../../domain/ServerFrames.ts"
import type { RelayDeps } from "../RelayDeps.ts"
import type { ConnectionContext } from "../ConnectionContext.ts"

/**
 * `node_info` (extension, no registration needed): what a client needs to sign a bound proof
 * (SECURITY.md 6), and whether this node requires one.
 */
export const nodeInfo = (deps: RelayDeps) => (session: ConnectionContext, frame: Envelope) =>
  session.reply("node_info_response", encodePayload("node_info_response", {
    nodeId: deps.nodeId,
    nodeKey: deps.nodeKey,
    proofVersions: deps.cfg.requireBoundProofs ? [2] : [1, 2]
  }), frame.requestId)

