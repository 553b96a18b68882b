import { RetryBudget } from '../../src'

class PaymentsBudget extends RetryBudget.Tag("payments")<PaymentsBudget>() {}

const PaymentsBudgetLive = PaymentsBudget.layer({ ratio: 0.1 })
