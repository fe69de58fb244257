"""The Ray backend: `pool` (the bot's side: the queue, per-slot threads), `slot` (one actor, as the
pool sees it), `actor` (runs on the worker machine). Imported only when `[workers] backend = "ray"`."""
