"""Catalog: products, their SKUs and prices, in the service's own database."""
