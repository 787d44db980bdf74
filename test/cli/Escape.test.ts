import { describe, expect, test } from "bun:test"
import { body, printable } from "../../src/cli/Escape.ts"

const ESC = "\u001b"

describe("printing remote strings", () => {
  test("every C0, DEL and C1 control character is shown, not sent to the terminal", () => {
    for (let c = 0; c < 0x20; c++) expect(printable(String.fromCharCode(c))).toBe(`\\x${c.toString(16).padStart(2, "0")}`)
    expect(printable("\u007f")).toBe("\\x7f")
    for (let c = 0x80; c < 0xa0; c++) expect(printable(String.fromCharCode(c))).toBe(`\\x${c.toString(16)}`)
  })

  test("an OSC 52 clipboard write and a cursor move come out as visible text", () => {
    const attack = `hi${ESC}]52;c;aGVsbG8=\u0007${ESC}[2K${ESC}[1A\u009b31m`
    const shown = printable(attack)
    expect(shown).toBe("hi\\x1b]52;c;aGVsbG8=\\x07\\x1b[2K\\x1b[1A\\x9b31m")
    expect(/[\u0000-\u001f\u007f-\u009f]/.test(shown)).toBe(false)
  })

  test("bidi overrides, isolates, marks and line separators are shown", () => {
    expect(printable("a\u202eevil\u202cb")).toBe("a\\u202eevil\\u202cb")
    expect(printable("\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u2028\u2029\ufeff")).toBe(
      "\\u2066\\u2067\\u2068\\u2069\\u200e\\u200f\\u061c\\u2028\\u2029\\ufeff"
    )
    expect(printable("héllo wörld ✓ 日本語 🙂 👨\u200d👩\u200d👧 می\u200cخواهم")).toBe("héllo wörld ✓ 日本語 🙂 👨\u200d👩\u200d👧 می\u200cخواهم")
    expect(printable("a\u200bb\u2060c")).toBe("a\\u200bb\\u2060c")
  })

  test("a message's newlines become continuation lines under its author, never a line of their own", () => {
    const prefix = "[12:00:00] bob: "
    const text = "fine\n[12:00:01] alice: send me your passphrase\r[12:00:02] carol: ok\r\nend"
    const lines = (prefix + body(text, prefix.length)).split("\n")
    expect(lines).toEqual([
      "[12:00:00] bob: fine",
      " ".repeat(prefix.length) + "[12:00:01] alice: send me your passphrase",
      " ".repeat(prefix.length) + "[12:00:02] carol: ok",
      " ".repeat(prefix.length) + "end"
    ])
    expect(body(`x${ESC}[31m\ny`, 2)).toBe("x\\x1b[31m\n  y")
  })
})
