"""Order: prices lines (catalog), reserves stock (inventory), records the order, and announces
it through Notify; cancellation releases the stock. It never calls its followers directly."""
