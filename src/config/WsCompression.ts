/**
 * permessage-deflate (RFC 7692) on the L2PS server: `off`; `shared`, one compressor for all sockets,
 * reset after every frame (no memory per socket, but each frame compressed alone, so JSON keys and
 * the keys and hashes a conversation repeats are sent again each time); or a compressor and a
 * decompressor kept per socket (`4KB` … `32KB`: the compressor's memory, as Bun names it; `4KB` keeps
 * a 512 B window, `32KB` a 4 KB one), which is what makes small frames shrink. A client that does not
 * offer the extension is served uncompressed.
 */
export const WS_COMPRESSIONS = ["off", "shared", "4KB", "8KB", "16KB", "32KB"] as const

export type WsCompression = (typeof WS_COMPRESSIONS)[number]
