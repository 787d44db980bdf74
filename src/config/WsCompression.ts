/**
 * permessage-deflate (RFC 7692) on the L2PS server: `off`; `shared`, one compressor for all sockets,
 * reset after every frame (no memory per socket, but each frame compressed alone, so JSON keys and
 * the keys and hashes a conversation repeats are sent again each time); or a window kept per socket
 * in each direction (`4KB` … `32KB`), which is what makes small frames shrink, at that memory per
 * socket and direction. A client that does not offer the extension is served uncompressed.
 */
export const WS_COMPRESSIONS = ["off", "shared", "4KB", "8KB", "16KB", "32KB"] as const

export type WsCompression = (typeof WS_COMPRESSIONS)[number]
