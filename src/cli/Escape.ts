/**
 * What a remote party wrote, made safe to print on a terminal. A peer's text, a key or a server's
 * message could otherwise carry escape sequences (OSC 52 writes the clipboard, CSI moves the cursor
 * and rewrites lines), a carriage return or newline that starts a line forged under another name, or
 * bidi overrides that show the characters in another order than they are.
 */

// C0 (tab included: it can push text over the prompt), DEL, C1, and the Unicode format characters that
// reorder or hide text: bidi embeddings/overrides/isolates and marks, line/paragraph separators,
// zero-width space and invisible operators. ZWNJ and ZWJ (U+200C/D) stay: scripts and emoji need them.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g

const visible = (c: string): string => {
  const code = c.codePointAt(0)!
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`
}

/** `s` on one line, every control or format character shown as `\xNN` / `\uNNNN`. */
export const printable = (s: string): string => s.replace(UNSAFE, visible)

/**
 * A message body under a line prefix of `indent` columns: its own line breaks (LF, CRLF, CR) become
 * continuation lines indented to the body's column, so no line of a message can start where a
 * sender's name is printed.
 */
export const body = (text: string, indent: number): string =>
  text.split(/\r\n|\r|\n/).map(printable).join("\n" + " ".repeat(indent))
