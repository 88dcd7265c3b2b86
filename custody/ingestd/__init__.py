"""The daemon side: dock sessions, the ingest pipeline, media processing, the job queue."""
