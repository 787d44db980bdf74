/**
 * A tiny promise-based raw WebSocket for protocol tests: send exactly the bytes a test wants and
 * read frames one by one. Every frame received is kept in `received`, whatever was consumed.
 */

export interface CloseInfo {
  readonly code: number
  readonly reason: string
}

/** A received frame parsed as JSON (protocol frames are objects with a `type`). */
export type Frame = {
  readonly type?: string
  readonly payload?: any
  readonly timestamp?: number
  readonly requestId?: string
  readonly [key: string]: unknown
}

export interface ReceivedFrame {
  /** the text of the frame (binary frames decoded as UTF-8) */
  readonly raw: string
  readonly binary: boolean
  readonly at: number
}

export interface RawSocket {
  readonly url: string
  readonly ws: WebSocket
  /** every frame received so far, in order, consumed or not */
  readonly received: ReadonlyArray<ReceivedFrame>
  /** resolves once the socket is closed (by either side), never rejects */
  readonly closed: Promise<CloseInfo>
  readonly isClosed: boolean
  sendText(text: string): void
  sendBinary(bytes: Uint8Array): void
  /** `sendText(JSON.stringify(value))` */
  sendJson(value: unknown): void
  /** The next unconsumed frame, parsed as JSON. Rejects on timeout, on close, or on invalid JSON. */
  next(timeoutMs?: number): Promise<Frame>
  /**
   * The first unconsumed frame with `type === type` (waiting for it if needed). Frames of other
   * types stay in the buffer, in order, for later `next()` calls.
   */
  nextOfType(type: string, timeoutMs?: number): Promise<Frame>
  /** Rejects if an unconsumed frame is buffered or one arrives within `ms`. */
  expectNothing(ms: number): Promise<void>
  /** Consume and return every buffered frame (parsed; `undefined` when not JSON). */
  drain(): Frame[]
  /** Close (default code 1000) and wait for the close to complete. */
  close(code?: number, reason?: string): Promise<CloseInfo>
}

const decoder = new TextDecoder()
const DEFAULT_TIMEOUT = 5000

const describe = (raw: string): string => (raw.length > 300 ? raw.slice(0, 300) + "…" : raw)

const parse = (raw: string): Frame => {
  try {
    return JSON.parse(raw) as Frame
  } catch {
    throw new Error(`RawSocket: frame is not JSON: ${describe(raw)}`)
  }
}

/** Open a WebSocket to `url`; rejects if it does not open within `timeoutMs`. */
export const open = (
  url: string,
  timeoutMs: number = DEFAULT_TIMEOUT,
  /** Headers of the upgrade request (Bun's WebSocket accepts them), e.g. `X-Forwarded-For`. */
  headers?: Readonly<Record<string, string>>,
): Promise<RawSocket> =>
  new Promise<RawSocket>((resolveOpen, rejectOpen) => {
    const ws = headers === undefined ? new WebSocket(url) : new WebSocket(url, { headers } as unknown as string[])
    ws.binaryType = "arraybuffer"

    const received: ReceivedFrame[] = []
    const buffer: ReceivedFrame[] = []
    let waiter: (() => void) | null = null
    let closeInfo: CloseInfo | null = null
    let resolveClosed!: (info: CloseInfo) => void
    const closed = new Promise<CloseInfo>((r) => {
      resolveClosed = r
    })
    let opened = false

    const openTimer = setTimeout(() => {
      rejectOpen(new Error(`RawSocket: ${url} did not open within ${timeoutMs} ms`))
      try {
        ws.close()
      } catch {
        // ignore
      }
    }, timeoutMs)

    const wake = (): void => {
      const w = waiter
      waiter = null
      if (w) w()
    }

    ws.onmessage = (event: MessageEvent) => {
      const data: unknown = event.data
      const binary = typeof data !== "string"
      const raw = typeof data === "string" ? data : decoder.decode(data as ArrayBuffer)
      const frame: ReceivedFrame = { raw, binary, at: Date.now() }
      received.push(frame)
      buffer.push(frame)
      wake()
    }
    ws.onclose = (event: CloseEvent) => {
      closeInfo = { code: event.code, reason: event.reason }
      resolveClosed(closeInfo)
      if (!opened) {
        clearTimeout(openTimer)
        rejectOpen(new Error(`RawSocket: ${url} closed before opening (${event.code} ${event.reason})`))
      }
      wake()
    }
    ws.onerror = () => {
      // the close event follows and carries the information
    }

    /** wait until `pick` returns a frame, or fail after `timeoutMs` */
    const waitFor = (pick: () => ReceivedFrame | undefined, what: string, timeoutMs: number): Promise<ReceivedFrame> =>
      new Promise<ReceivedFrame>((resolve, reject) => {
        const deadline = Date.now() + timeoutMs
        let timer: ReturnType<typeof setTimeout> | null = null
        const attempt = (): void => {
          const found = pick()
          if (found) {
            if (timer) clearTimeout(timer)
            resolve(found)
            return
          }
          if (closeInfo) {
            if (timer) clearTimeout(timer)
            reject(new Error(`RawSocket: closed (${closeInfo.code} ${closeInfo.reason}) while waiting for ${what}`))
            return
          }
          if (waiter) {
            reject(new Error("RawSocket: concurrent waits are not supported"))
            return
          }
          waiter = attempt
          if (!timer) {
            timer = setTimeout(() => {
              waiter = null
              const pending = buffer.map((f) => describe(f.raw)).join("\n  ")
              reject(
                new Error(
                  `RawSocket: timeout after ${timeoutMs} ms waiting for ${what}` +
                    (pending ? `; buffered frames:\n  ${pending}` : ""),
                ),
              )
            }, Math.max(0, deadline - Date.now()))
          }
        }
        attempt()
      })

    const socket: RawSocket = {
      url,
      ws,
      received,
      closed,
      get isClosed() {
        return closeInfo !== null
      },
      sendText(text) {
        ws.send(text)
      },
      sendBinary(bytes) {
        ws.send(bytes)
      },
      sendJson(value) {
        ws.send(JSON.stringify(value))
      },
      async next(timeoutMs = DEFAULT_TIMEOUT) {
        const f = await waitFor(() => buffer.shift(), "the next frame", timeoutMs)
        return parse(f.raw)
      },
      async nextOfType(type, timeoutMs = DEFAULT_TIMEOUT) {
        const pick = (): ReceivedFrame | undefined => {
          const i = buffer.findIndex((f) => {
            try {
              return (JSON.parse(f.raw) as Frame)?.type === type
            } catch {
              return false
            }
          })
          return i >= 0 ? buffer.splice(i, 1)[0] : undefined
        }
        const f = await waitFor(pick, `a frame of type "${type}"`, timeoutMs)
        return parse(f.raw)
      },
      expectNothing(ms) {
        return new Promise<void>((resolve, reject) => {
          const fail = (): void => {
            clearTimeout(timer)
            waiter = null
            reject(new Error(`RawSocket: expected no frame, got: ${describe(buffer[0]!.raw)}`))
          }
          const timer = setTimeout(() => {
            waiter = null
            if (buffer.length > 0) fail()
            else resolve()
          }, ms)
          if (buffer.length > 0) return fail()
          waiter = () => {
            if (buffer.length > 0) fail()
          }
        })
      },
      drain() {
        return buffer.splice(0, buffer.length).map((f) => {
          try {
            return JSON.parse(f.raw) as Frame
          } catch {
            return undefined as unknown as Frame
          }
        })
      },
      close(code = 1000, reason = "") {
        if (!closeInfo) ws.close(code, reason)
        return closed
      },
    }

    ws.onopen = () => {
      opened = true
      clearTimeout(openTimer)
      resolveOpen(socket)
    }
  })
