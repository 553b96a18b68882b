import { Fallback } from '../../src'
import { Context, Data, Effect, Layer } from "effect"

class ModelError extends Data.TaggedError("ModelError")<{ readonly status: number }> {}
class LanguageModel extends Context.Tag("LanguageModel")<LanguageModel, {
  readonly complete: (prompt: string) => Effect.Effect<string, ModelError>
}>() {}
declare const OpenAiLayer: Layer.Layer<LanguageModel>
declare const LocalModelLayer: Layer.Layer<LanguageModel>
declare const program: Effect.Effect<string, ModelError, LanguageModel>

const resilient = program.pipe(Effect.withExecutionPlan(Fallback.plan(OpenAiLayer, LocalModelLayer)))
