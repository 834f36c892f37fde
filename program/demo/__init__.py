"""The demo: seeding a simulated network and a receiver that shows callbacks arriving."""
