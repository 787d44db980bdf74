import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { Connection } from "../transport/Transport.ts"
import { Fifo } from "../internal/Fifo.ts"
import type { StallHooks } from "./StallWatch.ts"

/** Where an outbox writes: the socket, or a session that encodes frames on their way to it. */
export type Writer = Pick<Connection, "send" | "cork">

/** A frame bound for the socket; `messageId` marks a message whose delivery is tracked in storage. */
export interface Outgoing {
  readonly text: string
  readonly messageId?: string | undefined
}

type Item =
  | { readonly text: string; readonly messageId: string | undefined; readonly live: boolean }
  | { readonly marker: Deferred.Deferred<boolean> }

/** Outboxes written to while `coalesceWrites` runs, pumped when it ends. */
let deferred: Set<Outbox> | undefined

/**
 * Runs `f`, holding back the frames it queues until it returns; then each outbox written to is pumped
 * once, corked, so that its frames leave in one system call. For code that writes to many sessions in
 * one go (a group commit's completions: a batch of 2,048 messages had ~20 frames for each of 200
 * sockets, and a system call per frame was a quarter of the node's CPU; bench/RESULTS.md, "Corked
 * writes"). `f` must be synchronous; nested calls join the outer one.
 */
export const coalesceWrites = (f: () => void): void => {
  if (deferred !== undefined) return f()
  const held = deferred = new Set()
  try {
    f()
  } finally {
    deferred = undefined
    for (const outbox of held) outbox.flush()
  }
}

/**
 * What a connection has to write, in order, bounded by `capacity` frames. Frames are written to the socket
 * as they come, synchronously, until it reports backpressure; the rest wait here for its `drain`.
 * No fiber per connection is woken to write (that cost more than the write itself under load).
 *
 * `live` frames (messages pushed by other sessions) are also bounded in bytes, and stop short of the
 * last `reserved` slots so that the session's own replies always find room. Every frame together is
 * bounded by `maxBytes` as well: a reply waits while the outbox holds that much (one reply of any size
 * is taken when no other frame waits), so a client that asks and never reads holds a bounded amount.
 */
export class Outbox {
  private readonly items = new Fifo<Item>()
  private blocked = false
  private pumping = false
  private dead = false
  private roomWaiters: Array<Deferred.Deferred<void>> = []
  /** Bytes of live frames not yet written. */
  liveBytes = 0
  /** Bytes of every frame not yet written. */
  bytes = 0

  constructor(
    private readonly writer: Writer,
    readonly capacity: number,
    private readonly reserved: number,
    private readonly maxLiveBytes: number,
    private readonly maxBytes: number,
    /** Told after frames were written (the session may start a catch-up from storage). */
    private readonly owner: { readonly onWritten?: (() => void) | undefined },
    private readonly stall: StallHooks
  ) {}

  get size(): number {
    return this.items.size
  }

  /** Whether a live frame would be taken now. */
  hasRoomForLive(): boolean {
    return !this.dead && this.size < this.capacity - this.reserved && this.liveBytes < this.maxLiveBytes &&
      this.bytes < this.maxBytes
  }

  /** Non-blocking: false when full (the frame must then wait in storage). */
  pushLive(text: string, messageId: string | undefined): boolean {
    if (
      this.dead || this.size >= this.capacity - this.reserved || this.liveBytes + text.length > this.maxLiveBytes ||
      this.bytes + text.length > this.maxBytes
    ) {
      return false
    }
    this.liveBytes += text.length
    this.enqueue({ text, messageId, live: true })
    return true
  }

  /** A frame of the session's own, past the capacity if need be: the caller bounds how many. */
  pushOwn(text: string): void {
    if (!this.dead) this.enqueue({ text, messageId: undefined, live: false })
  }

  /**
   * Queues a frame, waiting for room; dropped once the socket is gone. `live`: a message from another
   * connection, counted in `liveBytes` until written.
   */
  offer(out: Outgoing, live = false): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.dead) return Effect.void
      if (this.hasRoomFor(out.text.length)) {
        if (live) this.liveBytes += out.text.length
        this.enqueue({ text: out.text, messageId: out.messageId, live })
        return Effect.void
      }
      return Effect.flatMap(Deferred.make<void>(), (room) => {
        // The socket may have drained since the check above: a waiter registered after the last wake-up
        // would wait for a write that never comes.
        if (this.dead || this.hasRoomFor(out.text.length)) return this.offer(out, live)
        this.roomWaiters.push(room)
        return Effect.zipRight(Deferred.await(room), this.offer(out, live))
      })
    })
  }

  /** True once everything queued before it is written to the socket, false if the socket closed first. */
  readonly written: Effect.Effect<boolean> = Effect.suspend(() => {
    if (this.dead) return Effect.succeed(false)
    if (this.size === 0) return Effect.succeed(true)
    return Effect.flatMap(Deferred.make<boolean>(), (marker) => {
      this.enqueue({ marker })
      return Deferred.await(marker)
    })
  })

  private hasRoomFor(length: number): boolean {
    return this.size < this.capacity && (this.bytes === 0 || this.bytes + length <= this.maxBytes)
  }

  /** Writes what `coalesceWrites` held back. */
  flush(): void {
    if (!this.blocked && !this.pumping) this.pump()
  }

  /** The socket can take more. */
  drain(): void {
    if (this.blocked) this.stall.drained()
    this.blocked = false
    this.pump()
  }

  /** The socket is gone: returns the tracked messages never written, and releases every waiter. */
  close(): Array<string> {
    this.dead = true
    const unwritten: Array<string> = []
    for (const item of this.items.clear()) {
      if ("marker" in item) Deferred.unsafeDone(item.marker, Exit.succeed(false))
      else if (item.messageId !== undefined) unwritten.push(item.messageId)
    }
    this.liveBytes = 0
    this.bytes = 0
    this.stall.drained()
    this.wakeWaiters()
    return unwritten
  }

  private enqueue(item: Item): void {
    if ("text" in item) this.bytes += item.text.length
    this.items.push(item)
    if (this.blocked || this.pumping) return
    if (deferred !== undefined) deferred.add(this)
    else this.pump()
  }

  private pump(): void {
    let wrote = false
    this.pumping = true
    try {
      if (this.writer.cork !== undefined && this.items.size > 1) this.writer.cork(() => void (wrote = this.writeAll()))
      else wrote = this.writeAll()
    } finally {
      this.pumping = false
    }
    this.wakeWaiters()
    if (wrote) this.owner.onWritten?.()
  }

  /** Writes until the socket pushes back or nothing is left; whether a frame was written. */
  private writeAll(): boolean {
    let wrote = false
    while (!this.blocked && !this.dead && this.items.size > 0) {
      const item = this.items.at(0)
      if ("marker" in item) {
        this.items.shift()
        Deferred.unsafeDone(item.marker, Exit.succeed(true))
        continue
      }
      const result = this.writer.send(item.text)
      if (result === "closed") {
        // Left in place: `close` hands its messageId back for requeueing.
        this.dead = true
        break
      }
      this.items.shift()
      wrote = true
      this.bytes -= item.text.length
      if (item.live) this.liveBytes -= item.text.length
      if (result === "backpressure") {
        this.blocked = true
        this.stall.blocked()
      }
    }
    return wrote
  }

  private wakeWaiters(): void {
    if (this.roomWaiters.length === 0 || (!this.dead && (this.size >= this.capacity || this.bytes >= this.maxBytes))) return
    const waiters = this.roomWaiters
    this.roomWaiters = []
    for (const w of waiters) Deferred.unsafeDone(w, Exit.void)
  }
}
