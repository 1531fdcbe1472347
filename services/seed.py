"""The small product set the shop starts with, so the demo has something to browse and buy.

Catalog seeds the products on its first start; inventory seeds stock for the same SKUs. Both do
it idempotently (a second start, or a second instance, changes nothing).
"""

CURRENCY = "CNY"

# product_id, title, description, [(sku, title, price_cents, attributes)]
PRODUCTS = (
    ("mi-phone-14", "Mi Phone 14", "A phone with a very good camera.", (
        ("PHONE14-128-BLACK", "Mi Phone 14 128G black", 399900,
         {"storage": "128G", "color": "black"}),
        ("PHONE14-256-WHITE", "Mi Phone 14 256G white", 449900,
         {"storage": "256G", "color": "white"}),
    )),
    ("mi-band-8", "Mi Band 8", "A fitness band.", (
        ("BAND8-BLACK", "Mi Band 8 black", 24900, {"color": "black"}),
    )),
    ("redmi-buds-5", "Redmi Buds 5", "Wireless earbuds.", (
        ("BUDS5-WHITE", "Redmi Buds 5 white", 19900, {"color": "white"}),
    )),
    ("mi-tv-55", "Mi TV 55", "A 55 inch television.", (
        ("TV55", "Mi TV 55 inch", 229900, {"size": "55"}),
    )),
)

# sku -> {warehouse: on-hand quantity}
STOCK = {
    "PHONE14-128-BLACK": {"beijing": 300, "shanghai": 200},
    "PHONE14-256-WHITE": {"beijing": 100, "shanghai": 100},
    "BAND8-BLACK": {"beijing": 1000, "shanghai": 1000},
    "BUDS5-WHITE": {"beijing": 500, "shanghai": 500},
    "TV55": {"beijing": 50, "shanghai": 30},
}

# sku -> {channel name: units allocated at seeding}; the rest stays in the unallocated pool.
ALLOCATION = {
    "PHONE14-128-BLACK": {"WEB": 200, "APP": 100},
    "PHONE14-256-WHITE": {"WEB": 100, "APP": 50},
    "BAND8-BLACK": {"WEB": 800, "APP": 800},
    "BUDS5-WHITE": {"WEB": 400, "APP": 400},
    "TV55": {"WEB": 40, "APP": 20},
}
