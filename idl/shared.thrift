/**
 * Types shared by every service of the shop: money, SKUs, addresses, error codes, the declared exceptions, and the Notify event.
 *
 * Conventions used across the shop's IDL:
 * - Money is integer cents, never floating point.
 * - Times are milliseconds since the Unix epoch (fields ending in _at_ms).
 * - Quantities are i32; counters that can grow without bound are i64.
 * - Every mutating call takes an idempotency key first. A replay with the same key and
 *   the same payload returns the first call's result; the same key with another payload
 *   raises ShopError with code CONFLICT.
 */

namespace py shop.shared
namespace go shop.shared
namespace php Shop.Shared
namespace js shop.shared

/** An amount of money in the smallest unit of its currency (cents for EUR, USD, CNY). */
typedef i64 Cents

/** A stock keeping unit code, e.g. "PHONE-8-128G-BLACK". */
typedef string Sku

/** An amount of money with its currency. */
struct Money {
  /** The amount, in cents. */
  1: required Cents cents,
  /** ISO 4217 currency code, e.g. "CNY". */
  2: required string currency,
}

/** A postal delivery address. */
struct Address {
  1: string recipient,
  2: string phone,
  3: string line1,
  4: string line2,
  5: string city,
  6: string region,
  7: string postal_code,
  /** ISO 3166-1 alpha-2 country code, e.g. "CN". */
  8: string country,
}

/** Why a call failed. Every declared exception carries one; callers branch on it, never on text. */
enum ErrorCode {
  /** An argument is missing, malformed or out of range. */
  INVALID_ARGUMENT = 1,
  /** The thing named by the call does not exist. */
  NOT_FOUND = 2,
  /** The idempotency key was already used with another payload. */
  CONFLICT = 3,
  /** Not enough sellable stock in the channel. */
  INSUFFICIENT_STOCK = 4,
  /** A flash sale has no tickets or stock left. */
  SOLD_OUT = 5,
  /** The user already holds a ticket for this flash sale. */
  ALREADY_APPLIED = 6,
  /** A flash sale token is unknown, expired or belongs to another sale. */
  INVALID_TOKEN = 7,
  /** A bug or an unexpected failure inside the service. */
  INTERNAL = 8,
  /** A service this call depends on could not be reached; the call may be retried. */
  UNAVAILABLE = 9,
  /** The flash sale has not started yet or has already ended. */
  SALE_NOT_ACTIVE = 10,
  /** The object is in a state that does not allow the call (e.g. confirming a released reservation). */
  INVALID_STATE = 11,
}

/** The general failure of a shop call; code says which. */
exception ShopError {
  1: ErrorCode code,
  2: string message,
}

/** The object named by the call does not exist. code is always NOT_FOUND. */
exception NotFound {
  1: ErrorCode code = ErrorCode.NOT_FOUND,
  2: string message,
  /** What kind of object was looked up: "product", "sku", "order", "reservation", ... */
  3: string kind,
  /** The identifier that was looked up. */
  4: string id,
}

/** A channel has fewer sellable units than requested. code is always INSUFFICIENT_STOCK. */
exception InsufficientStock {
  1: ErrorCode code = ErrorCode.INSUFFICIENT_STOCK,
  2: string message,
  3: Sku sku,
  4: i32 requested,
  5: i32 available,
}

/**
 * One event published through Notify and delivered to a subscriber's on_event method.
 * Delivery is at least once: a subscriber must treat a repeated id as already handled.
 */
struct Event {
  /** Unique id assigned by Notify at publish time; the deduplication key for subscribers. */
  1: required string id,
  /** The topic it was published to, e.g. "order.created". */
  2: required string topic,
  /** The body, a JSON document encoded as a string. */
  3: string payload,
  /** The ordering/partition key given by the publisher (e.g. an order id); may be empty. */
  4: string key,
  /** When Notify accepted the event. */
  5: i64 published_at_ms,
  /** 1 on the first delivery to this subscription, 2 on the first retry, and so on. */
  6: i32 attempt,
  /** The subscription this delivery belongs to; pass it to NotifyService.ack. */
  7: string subscription_id,
}
