import { Failure } from '../../src'
import { Data } from "effect"

class Refused extends Data.TaggedError("Refused")<{}> {}
const myTable = Failure.table<Refused>({ Refused: "connection" })

const ClassifierLive = Failure.layerClassifier({ tables: [myTable] })
