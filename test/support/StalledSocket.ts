/**
 * A WebSocket client on a raw TCP socket that can stop reading: `pause` leaves whatever the server sends
 * in the kernel's buffers, so the server sees a reader that takes nothing (backpressure), which the
 * WebSocket API of Bun or a browser never shows (they read everything into memory).
 */
import * as net from "node:net"
import { randomBytes } from "node:crypto"

export interface StalledSocket {
  /** Text frames received while reading, parsed. */
  readonly frames: Array<any>
  /** Bytes of frames received (headers excluded). */
  readonly receivedBytes: () => number
  readonly sendJson: (value: unknown) => void
  /** The next frame of `type` (reading must be on). */
  readonly nextOfType: (type: string, timeoutMs?: number) => Promise<any>
  readonly pause: () => void
  readonly resume: () => void
  /** Resolves when the TCP connection ends, whoever ended it. */
  readonly closed: Promise<void>
  readonly isClosed: () => boolean
  readonly destroy: () => void
}

const mask = (payload: Buffer): Buffer => {
  const len = payload.length
  const head = len < 126 ? Buffer.from([0x81, 0x80 | len])
    : len < 65536 ? Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255])
    : Buffer.concat([Buffer.from([0x81, 0x80 | 127]), (() => {
      const b = Buffer.alloc(8)
      b.writeBigUInt64BE(BigInt(len))
      return b
    })()])
  const key = randomBytes(4)
  const body = Buffer.alloc(len)
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ key[i & 3]!
  return Buffer.concat([head, key, body])
}

export const open = (url: string, timeoutMs = 5000): Promise<StalledSocket> =>
  new Promise((resolveOpen, rejectOpen) => {
    const { hostname, port } = new URL(url)
    const sock = net.connect(Number(port), hostname)
    const frames: Array<any> = []
    let received = 0
    let buffer = Buffer.alloc(0)
    let upgraded = false
    let closedFlag = false
    let waiter: (() => void) | undefined
    let resolveClosed!: () => void
    const closed = new Promise<void>((r) => {
      resolveClosed = r
    })
    const timer = setTimeout(() => rejectOpen(new Error(`no upgrade from ${url} within ${timeoutMs} ms`)), timeoutMs)

    const parse = () => {
      for (;;) {
        if (buffer.length < 2) return
        const op = buffer[0]! & 15
        let len = buffer[1]! & 127
        let at = 2
        if (len === 126) {
          if (buffer.length < 4) return
          len = buffer.readUInt16BE(2)
          at = 4
        } else if (len === 127) {
          if (buffer.length < 10) return
          len = Number(buffer.readBigUInt64BE(2))
          at = 10
        }
        if (buffer.length < at + len) return
        const body = buffer.subarray(at, at + len)
        buffer = buffer.subarray(at + len)
        received += len
        if (op === 1) frames.push(JSON.parse(body.toString("utf8")))
        waiter?.()
      }
    }

    sock.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      if (!upgraded) {
        const end = buffer.indexOf("\r\n\r\n")
        if (end < 0) return
        const head = buffer.subarray(0, end).toString()
        buffer = buffer.subarray(end + 4)
        if (!head.startsWith("HTTP/1.1 101")) return rejectOpen(new Error(`upgrade refused: ${head.split("\r\n")[0]}`))
        upgraded = true
        clearTimeout(timer)
        resolveOpen(socket)
      }
      parse()
    })
    sock.on("close", () => {
      closedFlag = true
      resolveClosed()
      waiter?.()
    })
    sock.on("error", () => {})
    sock.on("connect", () => {
      sock.write(
        `GET / HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`
      )
    })

    const socket: StalledSocket = {
      frames,
      receivedBytes: () => received,
      sendJson: (value) => {
        sock.write(mask(Buffer.from(JSON.stringify(value), "utf8")))
      },
      nextOfType: (type, ms = 5000) =>
        new Promise((resolve, reject) => {
          const deadline = setTimeout(() => {
            waiter = undefined
            reject(new Error(`no ${type} within ${ms} ms`))
          }, ms)
          const check = () => {
            const i = frames.findIndex((f) => f?.type === type)
            if (i >= 0) {
              clearTimeout(deadline)
              waiter = undefined
              resolve(frames.splice(i, 1)[0])
            } else if (closedFlag) {
              clearTimeout(deadline)
              waiter = undefined
              reject(new Error(`closed while waiting for ${type}`))
            }
          }
          waiter = check
          check()
        }),
      pause: () => {
        sock.pause()
      },
      resume: () => {
        sock.resume()
      },
      closed,
      isClosed: () => closedFlag,
      destroy: () => {
        sock.destroy()
      }
    }
  })
