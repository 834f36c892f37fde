"""`backhaul bench`: drives the whole pipeline with a simulated network and measures it (see README.md).

run.py         the command line (single run and --find-max)
sandbox.py     a private topic prefix and database for one benchmark
pipeline.py    the worker processes under test
receiver.py    the customer server that stamps every callback's arrival
load.py        driving the simulator and what it sent
step.py        one measured load step (shared by the single run and --find-max); findmax.py the step load
accounting.py  matching sent messages with received callbacks: loss, duplicates, latency
series.py      per-second time series; lag.py consumer lag per stage; cpu.py CPU per process
ceilings.py    raw aiokafka and raw aiohttp ceilings of the same run
report.py      terminal table and JSON; plot.py the PNG; progress.py the progress line
delivery_rate.py  deliveries/s of a lone delivery worker (URL and BATCH_URL)
"""
