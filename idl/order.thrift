/** Orders: creation (reserving stock in inventory), lookup, and cancellation. */

include "shared.thrift"
include "inventory.thrift"

namespace py shop.order
namespace go shop.order
namespace php Shop.Order
namespace js shop.order

/** PENDING while stock is being reserved, then CONFIRMED, or CANCELLED / FAILED. */
enum OrderStatus {
  PENDING = 1,
  CONFIRMED = 2,
  CANCELLED = 3,
  FAILED = 4,
}

/** One line of an order request: what to buy and how many. */
struct LineItem {
  1: required shared.Sku sku,
  2: required i32 quantity,
}

/** Everything create_order needs. */
struct CreateOrderRequest {
  1: required string user_id,
  /** At least one line; a SKU appears at most once. */
  2: required list<LineItem> lines,
  /** The channel whose virtual inventory the order draws from. */
  3: inventory.Channel channel = inventory.Channel.WEB,
  4: shared.Address address,
  /** The BigTap ticket token, required when channel is FLASH_SALE. */
  5: optional string flash_sale_token,
}

/** One line of a placed order, priced at creation time. */
struct OrderLine {
  1: required shared.Sku sku,
  2: required i32 quantity,
  3: shared.Money unit_price,
  /** The inventory reservation holding this line's units. */
  4: string reservation_id,
}

/** A placed order. */
struct Order {
  1: required string order_id,
  2: required string user_id,
  3: OrderStatus status,
  4: list<OrderLine> lines,
  5: shared.Money total,
  6: inventory.Channel channel,
  7: shared.Address address,
  8: optional string flash_sale_token,
  9: i64 created_at_ms,
  10: i64 updated_at_ms,
  /** Why the order FAILED or was CANCELLED; empty otherwise. */
  11: string reason,
}

/** Places and tracks orders. Also a Notify subscriber (see on_event). */
service OrderService {
  /** Health probe: returns "pong". */
  string ping(),

  /**
   * Prices the lines, reserves their stock in the request's channel and returns the order.
   * A replay with the same idempotency key returns the same order.
   */
  Order create_order(1: string idempotency_key, 2: CreateOrderRequest req)
    throws (1: shared.ShopError err, 2: shared.NotFound not_found,
            3: shared.InsufficientStock insufficient),

  /** One order. */
  Order get_order(1: string order_id) throws (1: shared.NotFound not_found),

  /**
   * Cancels a PENDING or CONFIRMED order and releases its reservations. Cancelling a
   * CANCELLED order returns it unchanged; a FAILED order raises ShopError INVALID_STATE.
   */
  Order cancel_order(1: string idempotency_key, 2: string order_id)
    throws (1: shared.ShopError err, 2: shared.NotFound not_found),

  /** A user's orders, newest first, skipping offset and returning at most limit (1-1000). */
  list<Order> list_orders(1: string user_id, 2: i32 offset, 3: i32 limit)
    throws (1: shared.ShopError err),

  /**
   * Notify delivery (the notify.EventSink signature). Returning acknowledges the event;
   * raising makes Notify retry it. Repeated event ids are ignored.
   */
  void on_event(1: shared.Event event) throws (1: shared.ShopError err),
}
