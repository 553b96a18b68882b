/**
 * The breaker's rules as a plain state machine, driven directly with a clock of the test's own:
 * the wall clock and the monotonic clock stand apart (10 s against 0.5 s) so that a rule that
 * reads the wrong one shows. Exact reasons, times and counters; the model test checks the same
 * rules over random sequences.
 */
import { CircuitBreaker } from "@bulwark/core"
import { describe, expect, it } from "@effect/vitest"
import * as Rules from "../src/internal/breakerState.js"

interface Clock {
  wall: number
  mono: number
  wallReads: number
  monoReads: number
}

type Change = readonly [from: CircuitBreaker.State, to: CircuitBreaker.State, at: number, publish: boolean]

const setup = (rules: Partial<Rules.Rules> = {}) => {
  const clock: Clock = { wall: 10_000, mono: 500, wallReads: 0, monoReads: 0 }
  const changes: Array<Change> = []
  const machine = new Rules.Machine(
    {
      policy: CircuitBreaker.consecutive(3),
      firstOpenDelay: 1000,
      scheduleAfterFirst: "after-first",
      halfOpenProbes: 1,
      successThreshold: 1,
      slowMillis: Infinity,
      slowRate: Infinity,
      ...rules
    },
    {
      wall: () => {
        clock.wallReads++
        return clock.wall
      },
      mono: () => {
        clock.monoReads++
        return clock.mono
      }
    },
    (from, to, at, publish) => {
      changes.push([from, to, at, publish])
    }
  )
  return { machine, clock, changes }
}

/** Admits one call in the closed (or disabled) state and records its outcome at once. */
const call = (machine: Rules.Machine, outcome: number, start = 0) => {
  expect(machine.admit()).toBe(Rules.ADMIT)
  return machine.record(machine.generation, machine.state, outcome, start)
}

/** Admits one probe of a half-open breaker: its generation. */
const probe = (machine: Rules.Machine) => {
  expect(machine.admit()).toBe(Rules.PROBE)
  expect(machine.takeProbe()).toBe(true)
  return machine.generation
}

/** Opens a consecutive(3) breaker with three failures. */
const open = (machine: Rules.Machine) => {
  call(machine, Rules.FAILURE)
  call(machine, Rules.FAILURE)
  call(machine, Rules.FAILURE)
  expect(machine.state).toBe("Open")
}

const countWindow = CircuitBreaker.countWindow({ size: 4, rateThreshold: 0.5, minimumCalls: 4 })

describe("CircuitBreaker rules (machine)", () => {
  it("a new machine is closed, dated by the wall clock, with the open duration at its first delay", () => {
    const { changes, machine } = setup()
    expect([machine.state, machine.since, machine.generation, machine.opens]).toEqual(["Closed", 10_000, 0, 0])
    expect([machine.nextOpenDelay, machine.scheduleState]).toEqual([1000, "after-first"])
    expect(changes).toEqual([])
  })

  it("keeps a window for window policies only, and reads time on outcomes only when a rule needs it", () => {
    const consecutive = setup().machine
    expect([consecutive.window, consecutive.timed, consecutive.needsTime]).toEqual([undefined, false, false])
    const count = setup({ policy: countWindow }).machine
    expect([count.window !== undefined, count.timed, count.needsTime]).toEqual([true, false, false])
    const slow = setup({ policy: countWindow, slowMillis: 100, slowRate: 0.5 }).machine
    expect([slow.window !== undefined, slow.timed, slow.needsTime]).toEqual([true, true, true])
    const time = setup({
      policy: CircuitBreaker.timeWindow({ window: 1000, buckets: 1, rateThreshold: 0.5, minimumCalls: 2 })
    }).machine
    expect([time.window !== undefined, time.timed, time.needsTime]).toEqual([true, false, true])
  })

  it("a consecutive policy opens at its threshold, dated by the wall clock, and a success starts the count afresh", () => {
    const { changes, clock, machine } = setup()
    clock.wallReads = 0
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(machine.consecutiveFailures).toBe(2)
    expect(call(machine, Rules.SUCCESS)).toBeUndefined()
    expect(machine.consecutiveFailures).toBe(0)
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(clock.wallReads).toBe(0)
    clock.wall = 12_000
    expect(call(machine, Rules.FAILURE)).toEqual({ to: "Open", at: 12_000, reason: "3 consecutive failures" })
    expect(clock.wallReads).toBe(1)
    expect(machine.state).toBe("Open")
    expect([machine.since, machine.openUntil, machine.openUntilMono, machine.opens]).toEqual([12_000, 13_000, 1500, 1])
    expect([machine.calls, machine.successes, machine.failures, machine.consecutiveFailures]).toEqual([6, 1, 5, 0])
    expect(changes).toEqual([["Closed", "Open", 12_000, true]])
  })

  it("a consecutive policy keeps no window: its metrics show no window calls and no rates", () => {
    const { machine } = setup()
    call(machine, Rules.FAILURE)
    call(machine, Rules.SUCCESS)
    expect(machine.metrics()).toEqual({
      state: "Closed",
      calls: 2,
      successes: 1,
      failures: 1,
      ignored: 0,
      slowCalls: 0,
      rejections: 0,
      consecutiveFailures: 0,
      windowCalls: 0,
      failureRate: 0,
      slowCallRate: 0,
      probesInFlight: 0,
      opens: 0
    })
  })

  it("an open breaker rejects until its monotonic deadline, then moves to half-open and offers a probe", () => {
    const { changes, clock, machine } = setup()
    open(machine)
    clock.mono = 1499
    clock.wall = 99_000
    expect(machine.admit()).toBe(Rules.REJECT)
    expect([machine.state, machine.rejections, machine.checkedAt, machine.retryAfter(1499)]).toEqual([
      "Open",
      1,
      1499,
      1
    ])
    clock.mono = 1500
    expect(machine.admit()).toBe(Rules.PROBE)
    expect([machine.state, machine.rejections, machine.checkedAt, machine.calls]).toEqual(["HalfOpen", 1, 1500, 3])
    expect(changes[changes.length - 1]).toEqual(["Open", "HalfOpen", 99_000, true])
    expect(machine.retryAfter(1600)).toBe(0)
    expect(machine.takeProbe()).toBe(true)
    expect([machine.probesInFlight, machine.calls]).toEqual([1, 4])
    // the one slot is taken: the next call is rejected
    expect(machine.admit()).toBe(Rules.REJECT)
    expect(machine.takeProbe()).toBe(false)
    expect([machine.probesInFlight, machine.calls, machine.rejections]).toEqual([1, 4, 2])
  })

  it("metrics move an open breaker whose time has come to half-open", () => {
    const { clock, machine } = setup()
    open(machine)
    clock.mono = 1499
    expect(machine.metrics().state).toBe("Open")
    clock.mono = 1500
    expect(machine.metrics().state).toBe("HalfOpen")
  })

  it("refresh moves only an open breaker, and only once its monotonic deadline is reached", () => {
    const { changes, machine } = setup()
    machine.refresh(1_000_000)
    expect([machine.state, changes.length]).toEqual(["Closed", 0])
    open(machine)
    machine.refresh(1499)
    expect(machine.state).toBe("Open")
    machine.refresh(1500)
    expect(machine.state).toBe("HalfOpen")
    machine.force("Isolated")
    machine.refresh(1_000_000)
    expect(machine.state).toBe("Isolated")
  })

  it("takeProbe takes a slot only in half-open and only while one is free", () => {
    const { clock, machine } = setup({ halfOpenProbes: 2 })
    expect(machine.takeProbe()).toBe(false)
    expect([machine.probesInFlight, machine.calls]).toEqual([0, 0])
    open(machine)
    clock.mono = 1500
    expect(machine.admit()).toBe(Rules.PROBE)
    expect(machine.takeProbe()).toBe(true)
    expect(machine.admit()).toBe(Rules.PROBE)
    expect(machine.takeProbe()).toBe(true)
    expect(machine.takeProbe()).toBe(false)
    expect(machine.admit()).toBe(Rules.REJECT)
    expect([machine.probesInFlight, machine.calls, machine.rejections]).toEqual([2, 5, 1])
  })

  it("an isolated breaker rejects without reading the clock, and its rejections wait forever", () => {
    const { clock, machine } = setup()
    expect(machine.force("Isolated")).toBe(true)
    clock.monoReads = 0
    expect(machine.admit()).toBe(Rules.REJECT)
    expect(machine.admit()).toBe(Rules.REJECT)
    expect([clock.monoReads, machine.checkedAt, machine.rejections, machine.calls]).toEqual([0, 0, 2, 0])
    expect(machine.retryAfter(0)).toBe(Infinity)
    expect(machine.takeProbe()).toBe(false)
  })

  it("a disabled breaker admits every call and counts its outcomes without ever opening", () => {
    const { machine } = setup({ policy: CircuitBreaker.countWindow({ size: 2, rateThreshold: 0.5, minimumCalls: 1 }) })
    machine.force("Disabled")
    for (let i = 0; i < 4; i++) expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(machine.state).toBe("Disabled")
    expect(machine.metrics()).toMatchObject({
      state: "Disabled",
      calls: 4,
      failures: 4,
      consecutiveFailures: 4,
      windowCalls: 2,
      failureRate: 1
    })
    const consecutive = setup().machine
    consecutive.force("Disabled")
    for (let i = 0; i < 4; i++) expect(call(consecutive, Rules.FAILURE)).toBeUndefined()
    expect([consecutive.state, consecutive.consecutiveFailures]).toEqual(["Disabled", 4])
  })

  it("ignored and interrupted outcomes count as neither success nor failure", () => {
    const { machine } = setup()
    call(machine, Rules.FAILURE)
    expect(call(machine, Rules.IGNORED)).toBeUndefined()
    expect(call(machine, Rules.INTERRUPTED)).toBeUndefined()
    expect(machine.metrics()).toMatchObject({
      calls: 3,
      successes: 0,
      failures: 1,
      ignored: 1,
      consecutiveFailures: 1,
      probesInFlight: 0
    })
  })

  it("an ignored or interrupted probe frees its slot; one of an earlier generation does not", () => {
    const { clock, machine } = setup({ halfOpenProbes: 2 })
    open(machine)
    clock.mono = 1500
    const first = probe(machine)
    expect(machine.record(first, "HalfOpen", Rules.INTERRUPTED, 0)).toBeUndefined()
    expect([machine.state, machine.probesInFlight, machine.ignored]).toEqual(["HalfOpen", 0, 0])
    const second = probe(machine)
    expect(machine.record(second, "HalfOpen", Rules.IGNORED, 0)).toBeUndefined()
    expect([machine.state, machine.probesInFlight, machine.ignored]).toEqual(["HalfOpen", 0, 1])
    // two probes out; the first fails and reopens, the second outlives its generation
    const failing = probe(machine)
    const stale = probe(machine)
    expect(machine.record(failing, "HalfOpen", Rules.FAILURE, 0)?.to).toBe("Open")
    clock.mono = 1500 + 1000
    const current = probe(machine)
    expect(machine.probesInFlight).toBe(1)
    expect(machine.record(stale, "HalfOpen", Rules.INTERRUPTED, 0)).toBeUndefined()
    expect(machine.record(stale, "HalfOpen", Rules.IGNORED, 0)).toBeUndefined()
    expect(machine.record(stale, "HalfOpen", Rules.SUCCESS, 0)).toBeUndefined()
    expect([machine.state, machine.probesInFlight, machine.probeSuccesses]).toEqual(["HalfOpen", 1, 0])
    expect(machine.record(current, "HalfOpen", Rules.SUCCESS, 0)).toEqual({
      to: "Closed",
      at: 10_000,
      reason: "1 probes succeeded"
    })
  })

  it("an outcome of an earlier generation is counted but moves nothing", () => {
    const { changes, machine } = setup({ policy: CircuitBreaker.consecutive(1) })
    expect(machine.admit()).toBe(Rules.ADMIT)
    const gen = machine.generation
    machine.reset()
    expect(machine.record(gen, "Closed", Rules.FAILURE, 0)).toBeUndefined()
    expect([machine.state, machine.failures, machine.consecutiveFailures, changes.length]).toEqual([
      "Closed",
      1,
      0,
      1
    ])
    expect(machine.record(gen, "Closed", Rules.SUCCESS, 0)).toBeUndefined()
    expect(machine.successes).toBe(1)
  })

  it("probes: enough successes close the breaker, a failed or a slow probe reopens it", () => {
    const { changes, clock, machine } = setup({ halfOpenProbes: 2, successThreshold: 2 })
    open(machine)
    clock.mono = 1500
    const a = probe(machine)
    const b = probe(machine)
    clock.wall = 20_000
    expect(machine.record(a, "HalfOpen", Rules.SUCCESS, 0)).toBeUndefined()
    expect([machine.state, machine.probesInFlight, machine.probeSuccesses]).toEqual(["HalfOpen", 1, 1])
    expect(machine.record(b, "HalfOpen", Rules.SUCCESS, 0)).toEqual({
      to: "Closed",
      at: 20_000,
      reason: "2 probes succeeded"
    })
    expect([machine.state, machine.probesInFlight, machine.opens]).toEqual(["Closed", 0, 0])
    expect(changes[changes.length - 1]).toEqual(["HalfOpen", "Closed", 20_000, true])

    open(machine)
    clock.mono += 1000
    const c = probe(machine)
    clock.wall = 21_000
    expect(machine.record(c, "HalfOpen", Rules.FAILURE, 0)).toEqual({
      to: "Open",
      at: 21_000,
      reason: "a probe failed"
    })
    expect([machine.state, machine.opens, machine.probesInFlight]).toEqual(["Open", 2, 0])
  })

  it("a probe that lasts the slow-call duration reopens the breaker; a quicker one counts as a success", () => {
    const { clock, machine } = setup({
      policy: CircuitBreaker.countWindow({ size: 4, rateThreshold: 1, minimumCalls: 4 }),
      slowMillis: 100,
      slowRate: 1,
      halfOpenProbes: 2,
      successThreshold: 2
    })
    machine.transition("Open", clock.wall)
    clock.mono += 1000
    const quick = probe(machine)
    const slow = probe(machine)
    expect(machine.record(quick, "HalfOpen", Rules.SUCCESS, 9_901)).toBeUndefined()
    expect([machine.probeSuccesses, machine.slowCalls]).toEqual([1, 0])
    expect(machine.record(slow, "HalfOpen", Rules.SUCCESS, 9_900)).toEqual({
      to: "Open",
      at: 10_000,
      reason: "a probe was slow"
    })
    expect([machine.successes, machine.slowCalls]).toEqual([2, 1])
  })

  it("a count window opens at its minimum number of calls once the failure rate reaches the threshold", () => {
    const { clock, machine } = setup({ policy: countWindow })
    clock.wallReads = 0
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(machine.state).toBe("Closed")
    expect(call(machine, Rules.FAILURE)).toEqual({ to: "Open", at: 10_000, reason: "failure rate 4/4 reached 0.5" })
    // a count window reads the wall clock only to date the transition
    expect(clock.wallReads).toBe(1)
  })

  it("a count window opens when the failure rate reaches the threshold exactly, not below it", () => {
    const { machine } = setup({ policy: countWindow })
    call(machine, Rules.SUCCESS)
    call(machine, Rules.SUCCESS)
    call(machine, Rules.SUCCESS)
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(machine.metrics()).toMatchObject({ windowCalls: 4, failureRate: 0.25, slowCallRate: 0 })
    expect(call(machine, Rules.FAILURE)).toEqual({ to: "Open", at: 10_000, reason: "failure rate 2/4 reached 0.5" })
    expect(machine.metrics()).toMatchObject({ state: "Open", windowCalls: 0, failureRate: 0 })
  })

  it("a count window opens when the slow-call rate reaches its threshold exactly, not below it", () => {
    const { clock, machine } = setup({
      policy: CircuitBreaker.countWindow({ size: 4, rateThreshold: 1, minimumCalls: 4 }),
      slowMillis: 100,
      slowRate: 0.5
    })
    const fast = clock.wall
    const slow = clock.wall - 100
    expect(call(machine, Rules.SUCCESS, fast)).toBeUndefined()
    expect(call(machine, Rules.SUCCESS, fast)).toBeUndefined()
    expect(call(machine, Rules.FAILURE, fast)).toBeUndefined()
    expect(call(machine, Rules.SUCCESS, slow)).toBeUndefined()
    expect(machine.metrics()).toMatchObject({ slowCalls: 1, windowCalls: 4, failureRate: 0.25, slowCallRate: 0.25 })
    expect(call(machine, Rules.SUCCESS, slow)).toEqual({
      to: "Open",
      at: 10_000,
      reason: "slow-call rate 2/4 reached 0.5"
    })
    expect(machine.slowCalls).toBe(2)
  })

  it("a time window forgets outcomes older than its span, by the wall clock of each outcome", () => {
    const { clock, machine } = setup({
      policy: CircuitBreaker.timeWindow({ window: 1000, buckets: 1, rateThreshold: 0.5, minimumCalls: 2 })
    })
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(machine.metrics().windowCalls).toBe(1)
    clock.wall += 2000
    expect(machine.metrics().windowCalls).toBe(0)
    expect(call(machine, Rules.FAILURE)).toBeUndefined()
    expect(machine.state).toBe("Closed")
    expect(call(machine, Rules.FAILURE)).toEqual({ to: "Open", at: 12_000, reason: "failure rate 2/2 reached 0.5" })
  })

  it("the open duration follows the schedule's steps, keeps its last delay, and starts over on close", () => {
    const { clock, machine } = setup()
    machine.scheduleStepped("second", 2000)
    expect([machine.nextOpenDelay, machine.scheduleState]).toEqual([2000, "second"])
    machine.scheduleStepped("done", undefined)
    expect([machine.nextOpenDelay, machine.scheduleState]).toEqual([2000, "done"])
    open(machine)
    expect([machine.openUntil, machine.openUntilMono]).toEqual([12_000, 2500])
    clock.mono = 2500
    machine.refresh(2500)
    // half-open keeps the count of opens and the schedule
    expect([machine.state, machine.opens, machine.nextOpenDelay, machine.scheduleState]).toEqual([
      "HalfOpen",
      1,
      2000,
      "done"
    ])
    machine.transition("Isolated", 10_000)
    expect([machine.opens, machine.nextOpenDelay, machine.scheduleState]).toEqual([1, 2000, "done"])
    machine.transition("Closed", 10_000)
    expect([machine.opens, machine.nextOpenDelay, machine.scheduleState]).toEqual([0, 1000, "after-first"])
  })

  it("reset closes from any state and tells the state it left", () => {
    const { changes, clock, machine } = setup()
    expect(machine.reset()).toBe("Closed")
    expect([machine.generation, changes]).toEqual([1, [["Closed", "Closed", 10_000, true]]])
    open(machine)
    clock.wall = 11_000
    expect(machine.reset()).toBe("Open")
    expect([machine.state, machine.opens, machine.since]).toEqual(["Closed", 0, 11_000])
    expect(changes[changes.length - 1]).toEqual(["Open", "Closed", 11_000, true])
  })

  it("release ends isolate and disable only", () => {
    const { changes, clock, machine } = setup()
    expect(machine.release()).toBe(false)
    expect([machine.generation, changes.length]).toEqual([0, 0])
    open(machine)
    expect(machine.release()).toBe(false)
    expect(machine.state).toBe("Open")
    machine.force("Isolated")
    clock.wall = 11_000
    expect(machine.release()).toBe(true)
    expect(changes[changes.length - 1]).toEqual(["Isolated", "Closed", 11_000, true])
    machine.force("Disabled")
    expect(machine.release()).toBe(true)
    expect(machine.state).toBe("Closed")
  })

  it("force moves to isolated or disabled, and does nothing when already there", () => {
    const { changes, clock, machine } = setup()
    clock.wall = 11_000
    expect(machine.force("Isolated")).toBe(true)
    expect(changes).toEqual([["Closed", "Isolated", 11_000, true]])
    expect(machine.force("Isolated")).toBe(false)
    expect([machine.generation, changes.length]).toEqual([1, 1])
    expect(machine.force("Disabled")).toBe(true)
    expect(changes[1]).toEqual(["Isolated", "Disabled", 11_000, true])
  })

  it("opensOf: 0 for a closed snapshot, its opens when a whole number above 0, else 1 for an open one", () => {
    const of = (state: CircuitBreaker.State, opens: number) =>
      Rules.Machine.opensOf({ state, since: 0, openUntil: null, opens })
    expect(of("Closed", 3)).toBe(0)
    expect(of("Open", 3)).toBe(3)
    expect(of("HalfOpen", 2)).toBe(2)
    expect(of("Isolated", 1)).toBe(1)
    expect(of("Open", 0)).toBe(1)
    expect(of("Open", -2)).toBe(1)
    expect(of("Open", 2.5)).toBe(1)
    expect(of("Open", NaN)).toBe(1)
    expect(of("HalfOpen", 0)).toBe(0)
    expect(of("Isolated", 2.5)).toBe(0)
    expect(of("Disabled", -1)).toBe(0)
  })

  it("changesOn: a snapshot of the same state changes nothing, except an open one", () => {
    const { machine } = setup()
    const snapshot = (state: CircuitBreaker.State) => ({ state, since: 0, openUntil: null, opens: 1 })
    expect(machine.changesOn(snapshot("Closed"))).toBe(false)
    expect(machine.changesOn(snapshot("Open"))).toBe(true)
    expect(machine.changesOn(snapshot("HalfOpen"))).toBe(true)
    open(machine)
    expect(machine.changesOn(snapshot("Open"))).toBe(true)
    expect(machine.changesOn(snapshot("Closed"))).toBe(true)
    machine.force("Isolated")
    expect(machine.changesOn(snapshot("Isolated"))).toBe(false)
  })

  it("apply takes an open snapshot's state, opens and time left, bounded by the longest open, unpublished", () => {
    const { changes, clock, machine } = setup()
    machine.scheduleStepped("fourth", 8000)
    clock.mono = 700
    machine.apply({ state: "Open", since: 9_000, openUntil: 10_300, opens: 3 }, 10_000, 4000)
    expect([machine.state, machine.since, machine.opens]).toEqual(["Open", 9_000, 3])
    expect([machine.openUntil, machine.openUntilMono]).toEqual([10_300, 1000])
    // the shell moved the schedule to the snapshot's opens: it stays there
    expect([machine.nextOpenDelay, machine.scheduleState]).toEqual([8000, "fourth"])
    expect(changes).toEqual([["Closed", "Open", 10_000, false]])

    const left = (openUntil: number | null) => {
      machine.apply({ state: "Open", since: 9_000, openUntil, opens: 3 }, 10_000, 4000)
      return [machine.openUntil, machine.openUntilMono]
    }
    expect(left(50_000)).toEqual([14_000, 4700])
    expect(left(9_000)).toEqual([10_000, 700])
    expect(left(null)).toEqual([14_000, 4700])
    expect(left(NaN)).toEqual([14_000, 4700])
  })

  it("apply dates a snapshot without a finite since at the time it is taken", () => {
    const { machine } = setup()
    machine.apply({ state: "Isolated", since: NaN, openUntil: null, opens: 0 }, 10_500, 1000)
    expect([machine.state, machine.since, machine.opens]).toEqual(["Isolated", 10_500, 0])
    machine.apply({ state: "Open", since: Infinity, openUntil: null, opens: 1 }, 10_600, 1000)
    expect(machine.since).toBe(10_600)
  })

  it("apply of a snapshot that stands for no open starts the open duration over; one that does keeps it", () => {
    const { changes, machine } = setup()
    open(machine)
    machine.scheduleStepped("second", 2000)
    machine.apply({ state: "HalfOpen", since: 9_000, openUntil: null, opens: 0 }, 10_000, 1000)
    expect([machine.state, machine.opens, machine.nextOpenDelay, machine.scheduleState]).toEqual([
      "HalfOpen",
      0,
      1000,
      "after-first"
    ])
    machine.scheduleStepped("third", 4000)
    machine.apply({ state: "HalfOpen", since: 9_000, openUntil: null, opens: 2 }, 10_000, 1000)
    expect([machine.opens, machine.nextOpenDelay, machine.scheduleState]).toEqual([2, 4000, "third"])
    // a closed snapshot leaves the end of the last open alone
    machine.apply({ state: "Closed", since: 9_000, openUntil: 99_999, opens: 0 }, 10_000, 3000)
    expect([machine.state, machine.opens, machine.openUntil, machine.openUntilMono]).toEqual([
      "Closed",
      0,
      11_000,
      1500
    ])
    expect(changes.slice(1).map(([from, to, , publish]) => [from, to, publish])).toEqual([
      ["Open", "HalfOpen", false],
      ["HalfOpen", "HalfOpen", false],
      ["HalfOpen", "Closed", false]
    ])
  })

  it("extendOpen moves the end of an open only later, unless told to take it exactly", () => {
    const { changes, clock, machine } = setup()
    open(machine)
    expect([machine.openUntil, machine.openUntilMono]).toEqual([11_000, 1500])
    const extend = (openUntil: number | null, exact?: boolean) => {
      machine.extendOpen({ state: "Open", since: 10_000, openUntil, opens: 1 }, clock.wall, 4000, exact)
      return [machine.openUntil, machine.openUntilMono]
    }
    clock.mono = 600
    clock.wall = 10_200
    // earlier: kept
    expect(extend(10_500)).toEqual([11_000, 1500])
    // the same monotonic end: kept, though the wall clock would date it apart
    expect(extend(11_100)).toEqual([11_000, 1500])
    // later: taken
    expect(extend(11_300)).toEqual([11_300, 1700])
    // bounded by the longest open
    expect(extend(90_000)).toEqual([14_200, 4600])
    // exact: taken wherever it is, never before now
    expect(extend(10_700, true)).toEqual([10_700, 1100])
    // no time to trust: the longest open
    expect(extend(null)).toEqual([14_200, 4600])
    expect(extend(9_000, true)).toEqual([10_200, 600])
    expect(extend(NaN)).toEqual([14_200, 4600])
    expect(extend(9_000, true)).toEqual([10_200, 600])
    expect(extend(null, true)).toEqual([14_200, 4600])
    expect([machine.state, machine.opens, changes.length]).toEqual(["Open", 1, 1])
  })
})
