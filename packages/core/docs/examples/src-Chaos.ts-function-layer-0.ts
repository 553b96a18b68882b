import { Chaos } from '../../src'
import { Context, Data, Effect, Layer } from "effect"

class PaymentDeclined extends Data.TaggedError("PaymentDeclined")<{}> {}
class Payments extends Context.Tag("Payments")<Payments, {
  readonly charge: (cents: number) => Effect.Effect<string, PaymentDeclined>
}>() {}
declare const PaymentsLive: Layer.Layer<Payments>

const FlakyPayments = Chaos.layer(Payments, PaymentsLive, {
  seed: 7,
  latency: "20 millis",
  hangRate: 0.01,
  failureRate: 0.1,
  failure: () => new PaymentDeclined()
})
