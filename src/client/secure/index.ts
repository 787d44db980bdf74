/** Secure sessions: PQXDH, the Double Ratchet and the ML-KEM ratchet (docs/PROTOCOL.md, "Secure sessions"). */
export * as DeviceKeys from "./DeviceKeys.ts"
export * as Envelope from "./Envelope.ts"
export * as Pqxdh from "./Pqxdh.ts"
export * as Ratchet from "./Ratchet.ts"
export * as SafetyNumber from "./SafetyNumber.ts"
export { SecureError, type SecureErrorReason } from "./SecureError.ts"
export * as SecureSessions from "./SecureSessions.ts"
export * as StateCodec from "./StateCodec.ts"
