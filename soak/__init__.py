"""A busy station under random faults (``make soak``): a simulated station docks recorders,
receives drops, serves clerks, custodians and auditors through the socket and replicates to S3
through a misbehaving proxy, while faults chosen by a seed strike at random moments; invariants
are checked against ground truth the generator keeps (never custody's own records), during the
run and at its end, and a report with plots is written.

    python -m soak [--minutes 30] [--seed N] [--out DIR] [--faults KIND,...] [--break NAME]

Runs as root under umockdev-wrapper (``make soak`` does both). See README, "Soak".
"""
