import pg from "pg"

/** Runs one statement on a connection of its own (CREATE / DROP DATABASE cannot run in a transaction). */
export const adminQuery = async (url: string, sql: string): Promise<void> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}
