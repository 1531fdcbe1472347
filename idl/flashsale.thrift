/**
 * BigTap, the flash-sale ticket machine. A sale has a fixed number of units. Users apply
 * for a ticket (at most one each, at most quantity in all), then redeem the ticket's token
 * with purchase, which places the order asynchronously; get_result polls for the outcome.
 */

include "shared.thrift"

namespace py shop.flashsale
namespace go shop.flashsale
namespace php Shop.Flashsale
namespace js shop.flashsale

/** Where a sale is in its life. */
enum SaleStatus {
  SCHEDULED = 1,
  ACTIVE = 2,
  SOLD_OUT = 3,
  ENDED = 4,
}

/** A flash sale of one SKU. */
struct Sale {
  1: required string sale_id,
  2: required shared.Sku sku,
  /** Units on sale, which is also the number of tickets. */
  3: required i32 quantity,
  4: required shared.Money price,
  5: i64 starts_at_ms,
  6: i64 ends_at_ms,
  7: SaleStatus status,
  8: i32 tickets_issued,
  /** Purchases that produced an order. */
  9: i32 sold,
}

/** The right to buy one unit of a sale. */
struct Ticket {
  /** Opaque; the key of purchase and get_result. */
  1: required string token,
  2: required string sale_id,
  3: required string user_id,
  4: i64 issued_at_ms,
  /** After this the token is INVALID_TOKEN and its unit returns to the sale. */
  5: i64 expires_at_ms,
}

/** PENDING until the order is placed (SUCCEEDED) or refused (FAILED). */
enum PurchaseStatus {
  PENDING = 1,
  SUCCEEDED = 2,
  FAILED = 3,
}

/** The outcome of redeeming a token. */
struct PurchaseResult {
  1: required string token,
  2: required PurchaseStatus status,
  /** Set once status is SUCCEEDED. */
  3: optional string order_id,
  /** Set when status is FAILED. */
  4: optional shared.ErrorCode error_code,
  5: string message,
}

/** BigTap: flash sales, tickets, and ticket redemption. */
service FlashSaleService {
  /** Health probe: returns "pong". */
  string ping(),

  /**
   * Creates a sale of quantity (> 0) units of sku at price, open from starts_at_ms
   * (inclusive) to ends_at_ms (exclusive). The service allocates the units to the
   * FLASH_SALE channel from inventory's unallocated pool. Raises ShopError
   * INSUFFICIENT_STOCK when the pool is short, NOT_FOUND for an unknown SKU, and
   * INVALID_ARGUMENT for a price above the list price or in another currency.
   */
  Sale register_sale(1: string idempotency_key, 2: shared.Sku sku, 3: i32 quantity,
                     4: shared.Money price, 5: i64 starts_at_ms, 6: i64 ends_at_ms)
    throws (1: shared.ShopError err),

  /**
   * Issues the user a ticket. At most one per user and sale: a user who already holds one
   * gets the same ticket back, so retries are safe. Raises ShopError SOLD_OUT when every
   * ticket is issued and SALE_NOT_ACTIVE outside the sale's window.
   */
  Ticket apply(1: string sale_id, 2: string user_id)
    throws (1: shared.ShopError err, 2: shared.NotFound not_found),

  /**
   * Redeems a token: the token is the idempotency key. Returns at once with PENDING (or
   * the final result on a replay). The same token with another address raises ShopError
   * CONFLICT; an unknown or expired token raises ShopError INVALID_TOKEN.
   */
  PurchaseResult purchase(1: string token, 2: shared.Address address)
    throws (1: shared.ShopError err),

  /** The current outcome of a token's purchase; a token never redeemed raises NotFound. */
  PurchaseResult get_result(1: string token)
    throws (1: shared.ShopError err, 2: shared.NotFound not_found),

  /** One sale, with its live counters. */
  Sale get_sale(1: string sale_id) throws (1: shared.NotFound not_found),
}
