"""The numerical core: position book, risk arrays, the fused aggregation kernel, margin assembly."""
