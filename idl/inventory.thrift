/**
 * Inventory: stock per warehouse, pooled into virtual inventory and allocated to sales
 * channels (Channel), then reserved and confirmed by orders.
 *
 * For one SKU:
 *   total        = sum of the per-warehouse quantities (set_stock)
 *   unallocated  = total - sum over channels of allocated
 *   per channel: available = allocated - reserved - confirmed
 * reserve moves units from available to reserved, confirm from reserved to confirmed,
 * release from reserved back to available.
 */

include "shared.thrift"

namespace py shop.inventory
namespace go shop.inventory
namespace php Shop.Inventory
namespace js shop.inventory

/**
 * The sales channels that virtual inventory allocates warehouse stock into (other files
 * say inventory.Channel). UNALLOCATED is not a channel: it names the pool of stock not yet
 * allocated to any channel, and is only valid as allocate's from_channel.
 */
enum Channel {
  UNALLOCATED = 0,
  WEB = 1,
  APP = 2,
  FLASH_SALE = 3,
}

/** The life of a reservation: HELD, then exactly one of CONFIRMED or RELEASED. */
enum ReservationStatus {
  HELD = 1,
  CONFIRMED = 2,
  RELEASED = 3,
}

/** Units of one SKU held in one channel for one order. */
struct Reservation {
  1: required string reservation_id,
  2: required shared.Sku sku,
  3: required Channel channel,
  4: required i32 quantity,
  5: string order_id,
  6: ReservationStatus status,
  7: i64 created_at_ms,
  /** When a HELD reservation is released automatically if not confirmed; 0 means never. */
  8: i64 expires_at_ms,
}

/** The virtual inventory of one SKU in one channel. */
struct ChannelStock {
  1: required Channel channel,
  /** Units allocated to the channel from the pool (net of moves out). */
  2: i32 allocated,
  /** Units that can still be reserved. */
  3: i32 available,
  /** Units held by HELD reservations. */
  4: i32 reserved,
  /** Units sold through CONFIRMED reservations. */
  5: i32 confirmed,
}

/** Stock of one SKU: physical per warehouse, and virtual per channel. */
struct StockLevel {
  1: required shared.Sku sku,
  /** Warehouse name to on-hand quantity. */
  2: map<string, i32> warehouses,
  /** Sum of the warehouse quantities. */
  3: i32 total,
  /** Units not allocated to any channel. */
  4: i32 unallocated,
  /** One entry per channel that ever had stock allocated, in Channel order. */
  5: list<ChannelStock> channels,
}

/** Warehouses, stock levels, channel allocation, and reservations. */
service InventoryService {
  /** Health probe: returns "pong". */
  string ping(),

  /**
   * Sets the on-hand quantity (>= 0) of a SKU in a warehouse, creating the warehouse on
   * first use. Returns the SKU's stock level after the call. Raises ShopError
   * INVALID_ARGUMENT if the new total would fall below what channels have allocated.
   */
  StockLevel set_stock(1: string idempotency_key, 2: string warehouse, 3: shared.Sku sku,
                       4: i32 quantity)
    throws (1: shared.ShopError err),

  /**
   * Moves quantity (> 0) sellable units into channel. They come from from_channel, or from
   * the unallocated pool when from_channel is unset or UNALLOCATED. Only available units
   * move. Returns the SKU's stock level after the call.
   */
  StockLevel allocate(1: string idempotency_key, 2: shared.Sku sku, 3: Channel channel,
                      4: i32 quantity, 5: Channel from_channel)
    throws (1: shared.ShopError err, 2: shared.NotFound not_found,
            3: shared.InsufficientStock insufficient),

  /** Holds quantity (> 0) units of the channel's available stock for an order. */
  Reservation reserve(1: string idempotency_key, 2: shared.Sku sku, 3: Channel channel,
                      4: i32 quantity, 5: string order_id)
    throws (1: shared.ShopError err, 2: shared.NotFound not_found,
            3: shared.InsufficientStock insufficient),

  /**
   * Turns a HELD reservation into a sale. Confirming a CONFIRMED reservation returns it
   * unchanged; a RELEASED one raises ShopError INVALID_STATE.
   */
  Reservation confirm(1: string idempotency_key, 2: string reservation_id)
    throws (1: shared.ShopError err, 2: shared.NotFound not_found),

  /**
   * Gives a HELD reservation's units back to its channel. Releasing a RELEASED reservation
   * returns it unchanged; a CONFIRMED one raises ShopError INVALID_STATE.
   */
  Reservation release(1: string idempotency_key, 2: string reservation_id)
    throws (1: shared.ShopError err, 2: shared.NotFound not_found),

  /** The stock level of a SKU; a SKU never stocked raises NotFound. */
  StockLevel get_stock(1: shared.Sku sku) throws (1: shared.NotFound not_found),
}
