/**
 * Safety numbers, Signal's style: 60 digits that two people compare (aloud, or as a QR code) to check
 * that each holds the other's real account key. Each key gives 30 digits: SHA-512 iterated 5,200
 * times over the key, the first 30 bytes read as six 5-byte numbers mod 100,000. The two halves are
 * ordered by their digits, so both sides see the same number.
 */
import { sha512 } from "@noble/hashes/sha2.js"
import { hexToBytes } from "@noble/hashes/utils.js"
import { concat, utf8 } from "./Bytes.ts"

const ITERATIONS = 5_200
const VERSION = Uint8Array.of(0, 0)
const LABEL = utf8("demos-im/safety-number/v1")

const half = (keyHex: string): string => {
  if (!/^[0-9a-fA-F]{64}$/.test(keyHex)) throw new Error("an account key is 64 hex characters")
  const key = hexToBytes(keyHex.toLowerCase())
  let hash = sha512(concat(VERSION, LABEL, key))
  for (let i = 1; i < ITERATIONS; i++) hash = sha512(concat(hash, key))
  let digits = ""
  for (let i = 0; i < 30; i += 5) {
    let chunk = 0
    for (let j = 0; j < 5; j++) chunk = chunk * 256 + hash[i + j]!
    digits += String(chunk % 100_000).padStart(5, "0")
  }
  return digits
}

/** 60 digits in twelve groups of five, the same whichever key is `mine`. */
export const safetyNumber = (myKey: string, peerKey: string): string => {
  const [a, b] = [half(myKey), half(peerKey)].sort()
  return (a! + b!).match(/\d{5}/g)!.join(" ")
}
