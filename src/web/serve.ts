/**
 * `npm run web`: builds the chat page and serves it (README, "Web chat").
 */
import * as PageBundle from "./PageBundle.ts"
import * as PageServer from "./PageServer.ts"
import { fromEnv, WebConfigError } from "./WebConfig.ts"

let config
try {
  config = fromEnv(process.env)
} catch (e) {
  if (!(e instanceof WebConfigError)) throw e
  console.error(`web chat: ${e.message}`)
  process.exit(2)
}
const page = await PageBundle.build()
const server = PageServer.start(page, config)
console.log(`web chat on http://${server.hostname}:${server.port}/ (node ${config.nodeUrl}, network ${config.network}; script ${Math.round(page.js.length / 1024)} KiB)`)

const stop = () => {
  void server.stop(true)
  process.exit(0)
}
process.on("SIGINT", stop)
process.on("SIGTERM", stop)
