"""Import mappings the `refrig import` tests share."""

# A wide export: one row per device and time, one temperature column.
TEMPERATURE_MAPPING = (
    "layout: wide\n"
    "device_id: {column: device}\n"
    "timestamp: {column: ts}\n"
    "sensors:\n"
    "  temp: {to: temperature_evaporator}\n"
)
