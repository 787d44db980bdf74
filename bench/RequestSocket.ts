/**
 * One WebSocket to the node whose requests go one at a time, each answered by the next frame that
 * carries a `requestId`; and a timer for one round trip. Shared by the request-latency benches.
 */

/** One socket and its replies in order (requests are sent one at a time). */
export const connect = async (url: string) => {
  const ws = new WebSocket(url)
  const waiting: Array<(text: string) => void> = []
  ws.onmessage = (e) => {
    const text = String(e.data)
    if (text.includes(`"requestId"`)) waiting.shift()?.(text)
  }
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve()
    ws.onerror = () => reject(new Error("socket failed"))
  })
  let n = 0
  const ask = (text: string) => new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply within 30 s to ${text.slice(0, 80)}`)), 30_000)
    waiting.push((reply) => {
      clearTimeout(timer)
      resolve(reply)
    })
    ws.send(text)
  })
  const request = async (type: string, payload: unknown) => {
    const reply = JSON.parse(await ask(JSON.stringify({ type, payload, timestamp: Date.now(), requestId: `q${++n}` })))
    if (reply.type === "error") throw new Error(`${type}: ${JSON.stringify(reply.payload)}`)
    return reply
  }
  return { ws, ask, request }
}

export const timed = async (f: () => Promise<unknown>) => {
  const t0 = performance.now()
  await f()
  return performance.now() - t0
}
