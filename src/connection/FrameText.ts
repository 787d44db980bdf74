/** Why a received frame has no text to decode. */
export class FrameTextError {
  private constructor(readonly reason: "TooLarge" | "NotUtf8") {}
  static readonly TooLarge = new FrameTextError("TooLarge")
  static readonly NotUtf8 = new FrameTextError("NotUtf8")
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * The text of a received frame, or why there is none: longer than `maxChars` (counted in bytes for a
 * binary frame, before decoding it), or a binary frame that is not valid UTF-8.
 */
export const frameText = (data: string | Uint8Array, maxChars: number): string | FrameTextError => {
  if (typeof data === "string") return data.length > maxChars ? FrameTextError.TooLarge : data
  if (data.byteLength > maxChars) return FrameTextError.TooLarge
  try {
    return utf8.decode(data)
  } catch {
    return FrameTextError.NotUtf8
  }
}
