"""Open311 GeoReport v2 under /open311/v2/: Open311 clients file and read requests."""
