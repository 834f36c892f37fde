"""The radio physics every part shares: path loss, link budgets, predicted margins and link quality.

Ingest grades link quality with it, the simulator decides which stations hear a device with it, and
the coverage API and the service map predict with it: one model, so that what the network predicts
and what the simulated network does can be compared (tests/integration/test_coverage_agreement.py).
"""
