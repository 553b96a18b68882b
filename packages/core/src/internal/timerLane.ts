/**
 * Timers that all wait the same number of milliseconds, under one Node timer. They expire in
 * the order they were armed, so a doubly linked list in that order is all the bookkeeping
 * needed: arming links a node at the tail, cancelling unlinks it (no Node timer is created or
 * cleared per call, which is most of what a timeout's success path would otherwise cost).
 *
 * The one Node timer is armed for the oldest node; when it fires, every expired node fires and
 * the timer is armed again for the next one. It keeps the process alive only while a node is
 * waiting (it is unref'd when the lane empties), as a timer of one's own would.
 *
 * @internal
 */

/**
 * A timer: armed in a lane (or, for a duration no lane serves, with a Node timer of its own),
 * it calls `fire` once its time has passed unless it was cancelled first. The work's own call
 * state extends this class, so arming a timer allocates nothing more.
 */
export abstract class Armed {
  prev: Armed | undefined = undefined
  next: Armed | undefined = undefined
  deadline = 0
  lane: TimerLane | undefined = undefined
  handle: ReturnType<typeof setTimeout> | undefined = undefined
  abstract fire(): void
  /** Arms this timer alone, on a Node timer of its own. */
  armAlone(millis: number): void {
    this.handle = setTimeout(() => this.fire(), millis)
  }
  /** Cancels this timer (nothing happens if it fired or was cancelled already). */
  cancel(): void {
    if (this.lane !== undefined) this.lane.unlink(this)
    else if (this.handle !== undefined) clearTimeout(this.handle)
  }
}

/** `performance.now()`: monotonic, so a wall-clock jump neither fires nor holds a timer. */
const now = (): number => performance.now()

/** The timers of one duration. */
export class TimerLane {
  private head: Armed | undefined = undefined
  private tail: Armed | undefined = undefined
  private timer: ReturnType<typeof setTimeout> | undefined = undefined
  private held = false
  constructor(readonly millis: number) {}

  /** Arms `armed`: it fires once `millis` have passed, unless it is cancelled first. */
  arm(armed: Armed): void {
    armed.lane = this
    armed.deadline = now() + this.millis
    const tail = this.tail
    if (tail === undefined) {
      this.head = armed
    } else {
      armed.prev = tail
      tail.next = armed
    }
    this.tail = armed
    if (this.timer === undefined) {
      this.timer = setTimeout(this.fire, this.millis)
      this.held = true
    } else if (!this.held) {
      this.timer.ref()
      this.held = true
    }
  }

  /** Unlinks a node (a second call, or a call for a node that fired, does nothing). */
  unlink(armed: Armed): void {
    const { next, prev } = armed
    if (prev === undefined ? this.head !== armed : prev.next !== armed) return
    if (prev === undefined) this.head = next
    else prev.next = next
    if (next === undefined) this.tail = prev
    else next.prev = prev
    armed.prev = undefined
    armed.next = undefined
    if (this.head === undefined && this.held) {
      this.timer!.unref()
      this.held = false
    }
  }

  private readonly fire = (): void => {
    this.timer = undefined
    this.held = false
    const at = now()
    // a Node timer may fire up to a millisecond before the monotonic clock says (it counts from
    // the event loop's cached time, in whole milliseconds): that millisecond is not re-armed for
    let armed = this.head
    while (armed !== undefined && armed.deadline <= at + 1) {
      this.unlink(armed)
      armed.fire()
      armed = this.head
    }
    if (armed !== undefined && this.timer === undefined) {
      this.timer = setTimeout(this.fire, Math.max(1, armed.deadline - at))
      this.held = true
    }
  }
}
