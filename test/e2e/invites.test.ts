/** Invite links end to end on a node with PGlite (scenarios: InviteScenarios.ts; Postgres: invites-postgres.test.ts). */
import { inviteScenarios } from "./InviteScenarios.ts"

inviteScenarios("pglite", async () => ({}))
