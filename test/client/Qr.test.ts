import { describe, expect, test } from "bun:test"
import { encode, toSvgPath, toTerminal } from "../../src/client/Qr.ts"

const LINK = "demos-im:wss://im.example.org:3006#default/EWscbNSV3j238ARL0W1OuVg5snrYVkQmxjtEDEh-WVr7pO10vI0ayrUQoPZ-lHpUeegtAoDtGwk"

/** The same link, version 7, level M, mask 3, as an independent encoder (python-qrcode 8.2) draws it. */
const REFERENCE = [
  "111111101011111001000100010000111100101111111",
  "100000101101001101001110000101110001001000001",
  "101110100100111001001010010111000001001011101",
  "101110101010101000101011010001010001101011101",
  "101110100111111100111111111110001011101011101",
  "100000100011011101111000111011110100001000001",
  "111111101010101010101010101010101010101111111",
  "000000001010101111101000100111110011000000000",
  "101101110111110101101111110110000001001001011",
  "010000011001001100100101010001110001100010101",
  "111110100100110010011010000101110111100001011",
  "100100001111000011110011100011000110000110010",
  "110101100000000100110011101001110001000001010",
  "001110000110011110101100101000011100011010110",
  "011110101001001110001101001110100001011011110",
  "000111011100010100100000001101001110110011110",
  "110001111010110110010010001100101100111000100",
  "011101000101101001001111110011011110000100010",
  "011000110100101000100000101000001001111000110",
  "010011001101100101011001110101010010111010011",
  "000011111000100111011111101111100001111110110",
  "011110001110000101011000110111100100100011111",
  "101010101110001011001010101111100010101010001",
  "100010001001100101011000110000111110100011001",
  "001111111101001100111111110000010011111110000",
  "010011010001001010010011011010011100111101000",
  "011110110001110000111000111101110101100100000",
  "011101000111100010111101100011100011010100101",
  "000000110101100111011101010100011001010110111",
  "100000010110011010011010000101001111100111010",
  "110001100011110010010000101000011011110011110",
  "111000001110111011010110010001110100100110000",
  "111101101000110110000110000111010000000101000",
  "001010001000011110001011110001111001010000111",
  "000010111010100110101010011101101011011100001",
  "011110000110011111010101000010010101111001001",
  "100110110101101010101111100001010000111111010",
  "000000001111011110011000111010001100100010110",
  "111111101001111011111010101010101000101011010",
  "100000101001100010011000111111110100100011101",
  "101110100111011000001111111001011110111111100",
  "101110101010010111100011100111001110110001001",
  "101110101010101000000101111010101011111000010",
  "100000100001000011000110100010000100011011001",
  "111111101111110110000000011111010010011110100",
]

const bits = (m: ReadonlyArray<ReadonlyArray<boolean>>) => m.map((row) => row.map((c) => (c ? "1" : "0")).join(""))

describe("QR encoder", () => {
  test("module for module the reference encoder's code (version 7: two blocks, version bits)", () => {
    const qr = encode(LINK, "M", 3)
    expect(qr.version).toBe(7)
    expect(bits(qr.modules)).toEqual(REFERENCE)
  })

  test("the smallest version that holds the text; capacities at the edges of versions", () => {
    expect(encode("x".repeat(17), "L").version).toBe(1)
    expect(encode("x".repeat(18), "L").version).toBe(2)
    expect(encode("x".repeat(134), "L").version).toBe(6)
    expect(encode("x".repeat(135), "L").version).toBe(7)
    expect(encode("x".repeat(106), "M").version).toBe(6)
    expect(encode("x".repeat(107), "M").version).toBe(7)
    expect(() => encode("x".repeat(3000), "L")).toThrow("Too long for a QR code")
  })

  test("an invite link fits a terminal: 2 module rows per line, dark on light", () => {
    const qr = encode(LINK, "M")
    const lines = toTerminal(qr).split("\n")
    expect(lines).toHaveLength(Math.ceil((qr.size + 4) / 2))
    expect(lines.every((l) => l.startsWith("\x1b[30;47m") && l.endsWith("\x1b[0m"))).toBe(true)
    const first = lines[1]!.replace(/\x1b\[[0-9;]*m/g, "")
    expect(first).toHaveLength(qr.size + 4)
    // The finder pattern's top two rows: all dark, then dark at both ends only.
    expect(first.slice(2, 9)).toBe("█▀▀▀▀▀█")
  })

  test("for a page: one SVG path, a unit square per dark module inside the quiet zone", () => {
    const qr = encode(LINK, "M", 3)
    const { viewBox, d } = toSvgPath(qr, 4)
    expect(viewBox).toBe(qr.size + 8)
    const squares = [...d.matchAll(/M(\d+) (\d+)h1v1h-1z/g)].map((m) => [Number(m[1]) - 4, Number(m[2]) - 4])
    expect(d).toBe(squares.map(([x, y]) => `M${x! + 4} ${y! + 4}h1v1h-1z`).join(""))
    // Drawn back into a grid, the squares are the code's dark modules, no more, no fewer.
    const grid = Array.from({ length: qr.size }, () => Array.from({ length: qr.size }, () => false))
    for (const [x, y] of squares) grid[y!]![x!] = true
    expect(bits(grid)).toEqual(REFERENCE)
  })
})
