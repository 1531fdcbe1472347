"""BigTap, the flash-sale ticket machine: sales drawn from the FLASH_SALE channel, at most one
ticket per user and no more tickets than units, and token redemption into orders."""
