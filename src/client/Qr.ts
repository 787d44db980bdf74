/**
 * A QR code encoder (ISO/IEC 18004, byte mode, error correction L or M, versions 1 to 40), small enough
 * to keep here rather than take a dependency for the chats' invite links, and renderers for terminals
 * and for SVG. Pure (no Node module), so the terminal chat and the web page share it.
 * The construction follows the standard step by step: data bits, Reed-Solomon blocks interleaved,
 * function patterns, the zigzag placement, the mask with the lowest penalty, format and version bits.
 */

export type Ecc = "L" | "M"

export interface QrCode {
  readonly version: number
  readonly size: number
  readonly mask: number
  /** `modules[y][x]`: true is dark. */
  readonly modules: ReadonlyArray<ReadonlyArray<boolean>>
}

// Per version (index 0 unused), from the standard's table 9.
const ECC_PER_BLOCK: Record<Ecc, ReadonlyArray<number>> = {
  L: [-1, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
  M: [-1, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28]
}
const BLOCKS: Record<Ecc, ReadonlyArray<number>> = {
  L: [-1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25],
  M: [-1, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49]
}
const FORMAT_ECC: Record<Ecc, number> = { L: 1, M: 0 }

const bit = (x: number, i: number): boolean => ((x >>> i) & 1) !== 0

const rawDataModules = (ver: number): number => {
  let n = (16 * ver + 128) * ver + 64
  if (ver >= 2) {
    const align = Math.floor(ver / 7) + 2
    n -= (25 * align - 10) * align - 55
    if (ver >= 7) n -= 36
  }
  return n
}

const dataCodewords = (ver: number, ecc: Ecc): number =>
  Math.floor(rawDataModules(ver) / 8) - ECC_PER_BLOCK[ecc][ver]! * BLOCKS[ecc][ver]!

// GF(2^8) with the polynomial 0x11D.
const gfMul = (x: number, y: number): number => {
  let z = 0
  for (let i = 7; i >= 0; i--) {
    z = (z << 1) ^ ((z >>> 7) * 0x11d)
    z ^= ((y >>> i) & 1) * x
  }
  return z & 0xff
}

const rsDivisor = (degree: number): Array<number> => {
  const result = new Array<number>(degree).fill(0)
  result[degree - 1] = 1
  let root = 1
  for (let i = 0; i < degree; i++) {
    for (let j = 0; j < degree; j++) {
      result[j] = gfMul(result[j]!, root)
      if (j + 1 < degree) result[j]! ^= result[j + 1]!
    }
    root = gfMul(root, 0x02)
  }
  return result
}

const rsRemainder = (data: ReadonlyArray<number>, divisor: ReadonlyArray<number>): Array<number> => {
  const result = divisor.map(() => 0)
  for (const b of data) {
    const factor = b ^ result.shift()!
    result.push(0)
    divisor.forEach((coef, i) => (result[i]! ^= gfMul(coef, factor)))
  }
  return result
}

const alignmentPositions = (ver: number): Array<number> => {
  if (ver === 1) return []
  const count = Math.floor(ver / 7) + 2
  const step = ver === 32 ? 26 : Math.ceil((ver * 4 + 4) / (count * 2 - 2)) * 2
  const result = [6]
  for (let pos = ver * 4 + 17 - 7; result.length < count; pos -= step) result.splice(1, 0, pos)
  return result
}

/** Encodes `text` (UTF-8, byte mode) in the smallest version that holds it; `mask` forces one (0..7). */
export const encode = (text: string, ecc: Ecc = "L", mask?: number): QrCode => {
  const bytes = new TextEncoder().encode(text)
  let ver = 1
  for (;; ver++) {
    if (ver > 40) throw new Error(`Too long for a QR code: ${bytes.length} bytes`)
    if (4 + (ver < 10 ? 8 : 16) + 8 * bytes.length <= dataCodewords(ver, ecc) * 8) break
  }
  const capacity = dataCodewords(ver, ecc) * 8
  const bits: Array<number> = []
  const put = (value: number, n: number) => {
    for (let i = n - 1; i >= 0; i--) bits.push((value >>> i) & 1)
  }
  put(0b0100, 4)
  put(bytes.length, ver < 10 ? 8 : 16)
  for (const b of bytes) put(b, 8)
  put(0, Math.min(4, capacity - bits.length))
  put(0, (8 - (bits.length % 8)) % 8)
  for (let pad = 0xec; bits.length < capacity; pad ^= 0xec ^ 0x11) put(pad, 8)
  const data: Array<number> = []
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0))

  // Blocks with their error correction, interleaved.
  const blocks = BLOCKS[ecc][ver]!
  const eccLen = ECC_PER_BLOCK[ecc][ver]!
  const raw = Math.floor(rawDataModules(ver) / 8)
  const shortBlocks = blocks - (raw % blocks)
  const shortLen = Math.floor(raw / blocks)
  const divisor = rsDivisor(eccLen)
  const parts: Array<Array<number>> = []
  for (let i = 0, k = 0; i < blocks; i++) {
    const dat = data.slice(k, k + shortLen - eccLen + (i < shortBlocks ? 0 : 1))
    k += dat.length
    const rem = rsRemainder(dat, divisor)
    if (i < shortBlocks) dat.push(0)
    parts.push([...dat, ...rem])
  }
  const codewords: Array<number> = []
  for (let i = 0; i < parts[0]!.length; i++) {
    parts.forEach((p, j) => {
      if (i !== shortLen - eccLen || j >= shortBlocks) codewords.push(p[i]!)
    })
  }

  const size = ver * 4 + 17
  const modules = Array.from({ length: size }, () => new Array<boolean>(size).fill(false))
  const fixed = Array.from({ length: size }, () => new Array<boolean>(size).fill(false))
  const setFixed = (x: number, y: number, dark: boolean) => {
    modules[y]![x] = dark
    fixed[y]![x] = true
  }
  for (let i = 0; i < size; i++) {
    setFixed(6, i, i % 2 === 0)
    setFixed(i, 6, i % 2 === 0)
  }
  for (const [cx, cy] of [[3, 3], [size - 4, 3], [3, size - 4]] as const) {
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        const d = Math.max(Math.abs(dx), Math.abs(dy))
        const x = cx + dx
        const y = cy + dy
        if (x >= 0 && x < size && y >= 0 && y < size) setFixed(x, y, d !== 2 && d !== 4)
      }
    }
  }
  const align = alignmentPositions(ver)
  align.forEach((ay, i) =>
    align.forEach((ax, j) => {
      const corner = (i === 0 && j === 0) || (i === 0 && j === align.length - 1) || (i === align.length - 1 && j === 0)
      if (corner) return
      for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) setFixed(ax + dx, ay + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1)
    })
  )
  const drawFormat = (m: number) => {
    const value = (FORMAT_ECC[ecc] << 3) | m
    let rem = value
    for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537)
    const f = ((value << 10) | rem) ^ 0x5412
    for (let i = 0; i <= 5; i++) setFixed(8, i, bit(f, i))
    setFixed(8, 7, bit(f, 6))
    setFixed(8, 8, bit(f, 7))
    setFixed(7, 8, bit(f, 8))
    for (let i = 9; i < 15; i++) setFixed(14 - i, 8, bit(f, i))
    for (let i = 0; i < 8; i++) setFixed(size - 1 - i, 8, bit(f, i))
    for (let i = 8; i < 15; i++) setFixed(8, size - 15 + i, bit(f, i))
    setFixed(8, size - 8, true)
  }
  drawFormat(0)
  if (ver >= 7) {
    let rem = ver
    for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25)
    const v = (ver << 12) | rem
    for (let i = 0; i < 18; i++) {
      const a = size - 11 + (i % 3)
      const b = Math.floor(i / 3)
      setFixed(a, b, bit(v, i))
      setFixed(b, a, bit(v, i))
    }
  }

  // The zigzag, two columns at a time from the right, skipping the vertical timing column.
  let i = 0
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5
    for (let vert = 0; vert < size; vert++) {
      for (let j = 0; j < 2; j++) {
        const x = right - j
        const y = ((right + 1) & 2) === 0 ? size - 1 - vert : vert
        if (!fixed[y]![x] && i < codewords.length * 8) {
          modules[y]![x] = bit(codewords[i >>> 3]!, 7 - (i & 7))
          i++
        }
      }
    }
  }

  const masked = (m: number): Array<Array<boolean>> => {
    const out = modules.map((row) => [...row])
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        if (fixed[y]![x]) continue
        const flip = [
          (x + y) % 2 === 0,
          y % 2 === 0,
          x % 3 === 0,
          (x + y) % 3 === 0,
          (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
          ((x * y) % 2) + ((x * y) % 3) === 0,
          (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
          (((x + y) % 2) + ((x * y) % 3)) % 2 === 0
        ][m]!
        if (flip) out[y]![x] = !out[y]![x]
      }
    }
    return out
  }
  let best = mask ?? 0
  if (mask === undefined) {
    let lowest = Infinity
    for (let m = 0; m < 8; m++) {
      drawFormat(m)
      const score = penalty(masked(m))
      if (score < lowest) {
        lowest = score
        best = m
      }
    }
  }
  drawFormat(best)
  return { version: ver, size, mask: best, modules: masked(best) }
}

/** The standard's mask penalty: runs, 2×2 blocks, finder-like patterns, dark balance. */
const penalty = (m: ReadonlyArray<ReadonlyArray<boolean>>): number => {
  const size = m.length
  let score = 0
  const lines: Array<Array<boolean>> = []
  for (let y = 0; y < size; y++) lines.push([...m[y]!])
  for (let x = 0; x < size; x++) lines.push(m.map((row) => row[x]!))
  const finder = [true, false, true, true, true, false, true]
  for (const line of lines) {
    let run = 1
    for (let i = 1; i <= line.length; i++) {
      if (i < line.length && line[i] === line[i - 1]) run++
      else {
        if (run >= 5) score += 3 + run - 5
        run = 1
      }
    }
    for (let i = 0; i + 7 <= line.length; i++) {
      if (!finder.every((v, k) => line[i + k] === v)) continue
      const lightBefore = i >= 4 && [1, 2, 3, 4].every((k) => !line[i - k])
      const lightAfter = i + 11 <= line.length && [0, 1, 2, 3].every((k) => !line[i + 7 + k])
      if (lightBefore) score += 40
      if (lightAfter) score += 40
    }
  }
  let dark = 0
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (m[y]![x]) dark++
      if (y + 1 < size && x + 1 < size) {
        const c = m[y]![x]
        if (m[y]![x + 1] === c && m[y + 1]![x] === c && m[y + 1]![x + 1] === c) score += 3
      }
    }
  }
  const total = size * size
  score += (Math.ceil(Math.abs(dark * 20 - total * 10) / total) - 1) * 10
  return score
}

/**
 * The code for a terminal: two rows of modules per line with half blocks, dark on light whatever the
 * terminal's colours (ANSI black on white), inside a quiet zone of `quiet` modules.
 */
export const toTerminal = (qr: QrCode, quiet = 2): string => {
  const at = (x: number, y: number) =>
    x >= 0 && y >= 0 && x < qr.size && y < qr.size ? qr.modules[y]![x]! : false
  const lines: Array<string> = []
  for (let y = -quiet; y < qr.size + quiet; y += 2) {
    let line = ""
    for (let x = -quiet; x < qr.size + quiet; x++) {
      const top = at(x, y)
      const bottom = y + 1 < qr.size + quiet && at(x, y + 1)
      line += top && bottom ? "█" : top ? "▀" : bottom ? "▄" : " "
    }
    lines.push(`\x1b[30;47m${line}\x1b[0m`)
  }
  return lines.join("\n")
}

/**
 * The code as one SVG path: a unit square per dark module, offset by the quiet zone, for a
 * `viewBox="0 0 n n"` with n = `size + 2 · quiet`. Built as data, so a page draws it with DOM calls (no
 * markup from a string).
 */
export const toSvgPath = (qr: QrCode, quiet = 4): { readonly viewBox: number; readonly d: string } => {
  const parts: Array<string> = []
  for (let y = 0; y < qr.size; y++) {
    for (let x = 0; x < qr.size; x++) if (qr.modules[y]![x]!) parts.push(`M${x + quiet} ${y + quiet}h1v1h-1z`)
  }
  return { viewBox: qr.size + 2 * quiet, d: parts.join("") }
}
