"""The program: the `backhaul` command, roles, the supervisor, process management and the demo.

It starts everything and is imported by nothing (README "How it works": imports point down)."""
