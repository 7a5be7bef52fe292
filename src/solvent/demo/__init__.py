"""The demo: a realistic synthetic venue, margined end to end, with a summary and a report."""
