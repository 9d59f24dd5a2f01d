"""One-time (idempotent) set-up of a deployment: the S3 bucket (:mod:`.bucket`), the instance's start/stop
schedules (:mod:`.schedules`) and the Cloudflare rules (:mod:`.rules`). Commands: ``python -m oi setup …``."""
