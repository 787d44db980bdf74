/**
 * `docker/compose.cluster.yml` and its load balancer's `docker/haproxy.cfg`, read from the files (the
 * tests run no Docker daemon): three nodes on one Postgres and one NATS, distinct NODE_IDs, every
 * service with a health check, the client's address passed by the load balancer and believed from it
 * alone, and the node settings the README's table defines. Where haproxy is installed, it checks the
 * configuration too.
 */
import { describe, expect, test } from "bun:test"
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { SETTINGS } from "../../src/config/Settings.ts"
import { parseTrustedProxies, clientAddress } from "../../src/domain/ClientAddress.ts"

const ROOT = resolve(import.meta.dir, "../..")
const read = (path: string) => readFileSync(join(ROOT, path), "utf8")

interface Service {
  readonly image?: string
  readonly command?: ReadonlyArray<string>
  readonly environment?: Record<string, string>
  readonly healthcheck?: { readonly test: ReadonlyArray<string> }
  readonly depends_on?: Record<string, { condition: string }> | ReadonlyArray<string>
  readonly ports?: ReadonlyArray<string>
  readonly volumes?: ReadonlyArray<string>
  readonly networks?: ReadonlyArray<string> | Record<string, { ipv4_address?: string } | null>
}

const compose = Bun.YAML.parse(read("docker/compose.cluster.yml")) as {
  services: Record<string, Service>
  volumes: Record<string, unknown>
  networks: Record<string, { ipam: { config: Array<{ subnet: string }> } }>
}
const services = compose.services
const nodes = Object.entries(services).filter(([, s]) => s.image === "demos-im-node")
const haproxy = read("docker/haproxy.cfg")

describe("the cluster compose file", () => {
  test("three nodes of the image the README builds, Postgres, NATS and a load balancer, each with a health check", () => {
    const built = /docker build -f docker\/Dockerfile -t (\S+) \./.exec(read("README.md"))
    expect(built?.[1]).toBe("demos-im-node")
    expect(nodes.map(([name]) => name)).toEqual(["node1", "node2", "node3"])
    expect(Object.keys(services).sort()).toEqual(["lb", "nats", "node1", "node2", "node3", "postgres"])
    for (const [name, s] of Object.entries(services)) {
      expect([name, Array.isArray(s.healthcheck?.test) && s.healthcheck!.test.length > 1]).toEqual([name, true])
    }
    // The nodes' check asks their own /health; the load balancer's checks do the same through the admin port.
    for (const [, s] of nodes) expect(s.healthcheck!.test.join(" ")).toContain("127.0.0.1:9464/health")
    expect(services["nats"]!.command).toContain("-m")
    expect(services["nats"]!.healthcheck!.test.join(" ")).toContain("/healthz")
    expect(services["lb"]!.healthcheck!.test.join(" ")).toContain("8404/healthz")
    expect(haproxy).toMatch(/^\s+monitor-uri \/healthz$/m)
  })

  test("every node has what a cluster member needs: the shared database and bus, a distinct NODE_ID, its own data volume", () => {
    const ids = nodes.map(([, s]) => s.environment!["NODE_ID"])
    expect(new Set(ids).size).toBe(3)
    const known = new Set(SETTINGS.map((s) => s.name))
    const volumes = new Set<string>()
    for (const [name, s] of nodes) {
      const env = s.environment!
      // Only settings the node reads: a misspelt variable would be silently ignored.
      for (const k of Object.keys(env)) expect([name, k, known.has(k)]).toEqual([name, k, true])
      expect(env["DATABASE_URL"]).toBe(nodes[0]![1].environment!["DATABASE_URL"])
      expect(env["DATABASE_URL"]).toStartWith("postgres://im:${POSTGRES_PASSWORD:?")
      expect(env["DATABASE_URL"]).toEndWith("@postgres:5432/im")
      expect(env["NATS_URL"]).toBe("nats://nats:4222")
      expect(env["NODE_ID"]).toMatch(/^[A-Za-z0-9_-]{1,64}$/)
      expect(env["ADMIN_HOST"]).toBe("0.0.0.0")
      expect(env["ADMIN_TOKEN"]).toMatch(/^\$\{ADMIN_TOKEN:\?\S/)
      expect(env["PG_TCP_KEEPALIVES"]).toBe("10,5,3")
      expect(env["DATA_DIR"]).toBe("/data")
      const data = s.volumes!.find((v) => v.endsWith(":/data"))!
      volumes.add(data.split(":")[0]!)
      expect(Object.keys(s.depends_on as object).sort()).toEqual(["nats", "postgres"])
      // Admin ports reach the host's loopback only.
      for (const p of s.ports ?? []) expect(p).toStartWith("127.0.0.1:")
    }
    expect(volumes.size).toBe(3)
    for (const v of volumes) expect(Object.keys(compose.volumes)).toContain(v)
  })

  test("the load balancer passes the client's address and is the only proxy the nodes believe", () => {
    expect(haproxy).toMatch(/^\s+mode http$/m)
    expect(haproxy).toMatch(/^\s+option forwardfor$/m)
    const lbAddress = (services["lb"]!.networks as Record<string, { ipv4_address: string }>)["cluster"]!.ipv4_address
    const subnet = compose.networks["cluster"]!.ipam.config[0]!.subnet
    const { proxies, bad } = parseTrustedProxies(nodes[0]![1].environment!["TRUSTED_PROXIES"]!)
    expect(bad).toBeUndefined()
    for (const [, s] of nodes) expect(s.environment!["TRUSTED_PROXIES"]).toBe(lbAddress)
    expect(lbAddress.split(".").slice(0, 3).join(".")).toBe(subnet.split(".").slice(0, 3).join("."))
    // Through the load balancer the node counts the client's address; another container's header is ignored.
    expect(clientAddress(lbAddress, "198.51.100.7", proxies)).toBe("198.51.100.7")
    expect(clientAddress("172.28.17.99", "198.51.100.7", proxies)).toBe("172.28.17.99")
    // Both WebSocket ports go to the three nodes, checked on their /health.
    for (const [backend, port] of [["l2ps", 3006], ["legacy", 3005]] as const) {
      const block = haproxy.slice(haproxy.indexOf(`\nbackend ${backend}\n`) + 1).split(/\n(?=\S)/)[0]!
      expect(block).toContain("option httpchk GET /health")
      const servers = [...block.matchAll(/^\s+server (\S+) (\S+):(\d+) check port 9464$/gm)].map((m) => [m[1], m[2], Number(m[3])])
      expect(servers).toEqual(nodes.map(([name]) => [name, name, port]))
      expect(services["lb"]!.ports).toContain(`${port}:${port}`)
    }
    expect(haproxy).toMatch(/^\s+timeout tunnel \S+$/m)
  })

  test.skipIf(!existsSync("/usr/sbin/haproxy"))("haproxy accepts the configuration", () => {
    const check = spawnSync("/usr/sbin/haproxy", ["-c", "-f", join(ROOT, "docker/haproxy.cfg")], { encoding: "utf8" })
    expect([check.status, check.stdout + check.stderr]).toEqual([0, expect.stringContaining("Configuration file is valid")])
  })
})
