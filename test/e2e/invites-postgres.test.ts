/** Invite links end to end on a node with Postgres, when TEST_DATABASE_URL is set (scenarios: InviteScenarios.ts). */
import { describe } from "bun:test"
import pg from "pg"
import { randomHash } from "../support/L2psClient.ts"
import { inviteScenarios } from "./InviteScenarios.ts"

const adminUrl = process.env["TEST_DATABASE_URL"] || undefined
const name = `im_e2e_invites_${randomHash().slice(0, 12)}`
const admin = async (sql: string) => {
  const c = new pg.Client({ connectionString: adminUrl })
  await c.connect()
  await c.query(sql)
  await c.end()
}

if (adminUrl === undefined) {
  describe.skip("invite links on postgres (set TEST_DATABASE_URL to run them)", () => {})
} else {
  inviteScenarios("postgres", async () => {
    await admin(`CREATE DATABASE ${name}`)
    const u = new URL(adminUrl)
    u.pathname = `/${name}`
    return { DATABASE_URL: u.toString() }
  }, () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
}
