/**
 * The web chat server's settings, from the environment (README, "Web chat"). A bad value stops it at
 * start with the variable's name, as the node does.
 */
import { checkKdf } from "../client/SecretStore.ts"

export interface WebConfig {
  readonly host: string
  /** 0: any free port (printed at start) */
  readonly port: number
  /** the node's L2PS WebSocket, as the browser reaches it */
  readonly nodeUrl: string
  readonly network: string
  /** scrypt N for identities created in the browser */
  readonly scryptN: number
}

export const DEFAULTS: WebConfig = {
  host: "127.0.0.1",
  port: 3080,
  nodeUrl: "ws://127.0.0.1:3006",
  network: "default",
  scryptN: 2 ** 17
}

export class WebConfigError extends Error {}

const integer = (name: string, text: string, min: number, max: number): number => {
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < min || n > max) throw new WebConfigError(`${name}: expected an integer from ${min} to ${max}, got "${text}"`)
  return n
}

/** Reads the settings; throws `WebConfigError` naming the variable that is wrong. */
export const fromEnv = (env: Readonly<Record<string, string | undefined>>): WebConfig => {
  const get = (name: string) => {
    const v = env[name]?.trim()
    return v === undefined || v === "" ? undefined : v
  }
  const nodeUrl = get("WEB_NODE_URL") ?? DEFAULTS.nodeUrl
  let url: URL
  try {
    url = new URL(nodeUrl)
  } catch {
    throw new WebConfigError(`WEB_NODE_URL: not a URL: "${nodeUrl}"`)
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") throw new WebConfigError(`WEB_NODE_URL: expected ws:// or wss://, got "${nodeUrl}"`)
  const network = get("WEB_NETWORK") ?? DEFAULTS.network
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(network)) throw new WebConfigError(`WEB_NETWORK: expected 1-64 of A-Z a-z 0-9 _ -, got "${network}"`)
  const scryptText = get("WEB_SCRYPT_N")
  const scryptN = scryptText === undefined ? DEFAULTS.scryptN : integer("WEB_SCRYPT_N", scryptText, 1, 2 ** 30)
  const bad = checkKdf({ N: scryptN, r: 8, p: 1 })
  if (bad !== undefined) throw new WebConfigError(`WEB_SCRYPT_N: ${bad}`)
  const portText = get("WEB_PORT")
  return {
    host: get("WEB_HOST") ?? DEFAULTS.host,
    port: portText === undefined ? DEFAULTS.port : integer("WEB_PORT", portText, 0, 65535),
    nodeUrl,
    network,
    scryptN
  }
}
