/** The catalog: products, their SKUs, and prices. */

include "shared.thrift"

namespace py shop.catalog
namespace go shop.catalog
namespace php Shop.Catalog
namespace js shop.catalog

/** One sellable variant of a product (a colour, a size, a memory configuration). */
struct SkuInfo {
  1: required shared.Sku sku,
  /** The product this SKU belongs to. */
  2: required string product_id,
  3: string title,
  /** The current list price. */
  4: shared.Money price,
  /** Free-form variant attributes, e.g. {"color": "black", "storage": "128G"}. */
  5: map<string, string> attributes,
  /** Inactive SKUs are kept for history but cannot be ordered. */
  6: bool active = true,
}

/** A product and all of its SKUs. */
struct Product {
  1: required string product_id,
  2: string title,
  3: string description,
  4: list<SkuInfo> skus,
  /** Inactive products are hidden from list_products. */
  5: bool active = true,
  /** Set by the service on every upsert; ignored on input. */
  6: i64 updated_at_ms,
}

/** Products, SKUs and prices. Reads are cheap and may be cached by callers. */
service CatalogService {
  /** Health probe: returns "pong". */
  string ping(),

  /** One product with its SKUs. */
  Product get_product(1: string product_id) throws (1: shared.NotFound not_found),

  /**
   * Active products ordered by product_id, skipping offset and returning at most limit
   * (1-1000). An offset past the end returns an empty list.
   */
  list<Product> list_products(1: i32 offset, 2: i32 limit) throws (1: shared.ShopError err),

  /** One SKU. */
  SkuInfo get_sku(1: shared.Sku sku) throws (1: shared.NotFound not_found),

  /**
   * Current prices of the given SKUs. Unknown or inactive SKUs are absent from the map;
   * an empty list returns an empty map.
   */
  map<shared.Sku, shared.Money> get_prices(1: list<shared.Sku> skus),

  /**
   * Creates or replaces a product and its SKUs (SKUs missing from product.skus are made
   * inactive). Raises ShopError INVALID_ARGUMENT for a bad product and CONFLICT for a
   * reused idempotency key with another product.
   */
  void upsert_product(1: string idempotency_key, 2: Product product)
    throws (1: shared.ShopError err),
}
