"""What to keep and for how long: pure policy evaluation, holds, disposition."""
