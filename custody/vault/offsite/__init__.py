"""Off-site replicas: S3-compatible buckets that hold the vault's sealed objects and describe it.

- :mod:`.target`: one bucket, through boto3 (upload, check, Object Lock).
- :mod:`.replicator`: the persistent queue and the worker that empties it.
- :mod:`.published`: what makes a replica self-describing (the sealed catalog, keys and audit
  chain beside the objects), and how a vault is rebuilt from it.
"""
