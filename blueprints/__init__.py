"""HTTP areas, one blueprint each."""
