import { encodeFrame } from "../domain/Frames.ts"
import { MessageHash } from "../domain/Ids.ts"
import { encodePayload } from "../domain/ServerFrames.ts"

/** The `message_delivered` frame; with `receipt` only for the sessions that asked for receipts. */
export const deliveredFrame = (messageHash: string, at: number, receipt?: string): string =>
  encodeFrame(
    "message_delivered",
    encodePayload("message_delivered", { messageHash: MessageHash.make(messageHash), at, ...(receipt === undefined ? {} : { receipt }) }),
    at
  )
