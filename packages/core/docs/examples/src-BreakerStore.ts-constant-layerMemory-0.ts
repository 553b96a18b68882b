import { BreakerStore, CircuitBreaker } from '../../src'
import { Layer } from "effect"

const Breakers = CircuitBreaker.layer({ name: "payments" }).pipe(Layer.provide(BreakerStore.layerMemory))
