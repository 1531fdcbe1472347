/**
 * Notify, the asynchronous messaging hub. Publishers hand events to Notify; Notify calls
 * each subscription's method (a soa service plus a method with the EventSink signature)
 * at least once, retrying with backoff until the call returns or ack is called.
 */

include "shared.thrift"

namespace py shop.notify
namespace go shop.notify
namespace php Shop.Notify
namespace js shop.notify

/** A standing order to deliver a topic's events to one method of one soa service. */
struct Subscription {
  1: required string subscription_id,
  2: required string topic,
  /** The soa service name to call, as registered in etcd (e.g. "order"). */
  3: required string service_name,
  /** The method to call; it takes one shared.Event argument (see EventSink). */
  4: required string method,
  /**
   * Subscriptions sharing topic, service_name and group form one consumer group: each event
   * goes to one of them. Empty means the default group.
   */
  5: string group,
  6: i64 created_at_ms,
}

/** Where one event stands for one subscription. */
enum DeliveryStatus {
  /** Not yet attempted, or waiting for its next retry. */
  PENDING = 1,
  /** The subscriber returned, or ack was called. */
  DELIVERED = 2,
  /** Retries exhausted; kept for inspection. */
  DEAD = 3,
}

/** One event's delivery to one subscription. */
struct Delivery {
  1: required string event_id,
  2: required string subscription_id,
  3: required DeliveryStatus status,
  4: string topic,
  /** Attempts made so far. */
  5: i32 attempts,
  6: i64 last_attempt_at_ms,
  /** 0 when no retry is scheduled. */
  7: i64 next_attempt_at_ms,
  /** The last failure, empty if none. */
  8: string last_error,
}

/** Counters since the Notify instance started. */
struct Stats {
  1: i64 published,
  2: i64 delivered,
  3: i64 pending,
  4: i64 dead,
  /** Attempts that failed and were scheduled for retry. */
  5: i64 retries,
  6: i32 subscriptions,
}

/**
 * The canonical subscriber signature. A service receives Notify deliveries by declaring
 * the same on_event method (or by extending EventSink, inheriting ping too).
 */
service EventSink {
  /** Health probe: returns "pong". */
  string ping(),

  /**
   * One delivery. Returning acknowledges it; raising (or timing out) makes Notify retry.
   * Must be idempotent on event.id.
   */
  void on_event(1: shared.Event event) throws (1: shared.ShopError err),
}

/** The messaging hub: publish, subscribe, and observe deliveries. */
service NotifyService {
  /** Health probe: returns "pong". */
  string ping(),

  /**
   * Stores an event and schedules its delivery to every subscription of topic. payload is
   * a JSON document as a string; key orders events (same key, same order). Returns the
   * event id; a replay with the same idempotency key returns the same id.
   */
  string publish(1: string idempotency_key, 2: string topic, 3: string payload, 4: string key)
    throws (1: shared.ShopError err),

  /**
   * Subscribes service_name.method to topic. Subscribing the same (topic, service_name,
   * method, group) again returns the existing subscription.
   */
  Subscription subscribe(1: string topic, 2: string service_name, 3: string method,
                         4: string group)
    throws (1: shared.ShopError err),

  /** Removes a subscription; pending deliveries to it are dropped. */
  void unsubscribe(1: string subscription_id) throws (1: shared.NotFound not_found),

  /** The subscriptions of topic, or of every topic when topic is empty. */
  list<Subscription> subscriptions(1: string topic),

  /**
   * Marks an event delivered for a subscription, for subscribers that finish their work
   * after on_event returned an error or timed out. Acking twice is harmless.
   */
  void ack(1: string subscription_id, 2: string event_id) throws (1: shared.NotFound not_found),

  /**
   * Deliveries of a subscription, newest first, skipping offset and returning at most
   * limit (1-1000).
   */
  list<Delivery> deliveries(1: string subscription_id, 2: i32 offset, 3: i32 limit)
    throws (1: shared.ShopError err, 2: shared.NotFound not_found),

  /** Counters for dashboards and tests. */
  Stats stats(),
}
