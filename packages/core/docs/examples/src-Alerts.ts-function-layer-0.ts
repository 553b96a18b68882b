import { Alerts } from '../../src'
import { Effect } from "effect"

const PagerAlerts = Alerts.layer((alert) => Effect.log(`page on-call: ${alert.message}`), {
  maxPerKey: 1,
  interval: "5 minutes"
})
