import { Bulkhead } from '../../src'
import { Effect } from "effect"

class PaymentsBulkhead extends Bulkhead.Tag("payments")<PaymentsBulkhead>() {}

const charge = Effect.succeed("charged").pipe(PaymentsBulkhead.protect)
const main = charge.pipe(Effect.provide(PaymentsBulkhead.layer({ maxConcurrent: 4, maxQueued: 16 })))
