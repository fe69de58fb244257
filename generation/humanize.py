"""Numbers written the way people read them, for messages."""


def format_duration(seconds: float) -> str:
    """`75.4` -> `1:15`, `8.25` -> `8.2 s`: minutes for anything a minute or longer."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_bytes(count: int) -> str:
    """`26214400` -> `25.0 MiB`."""
    if count < 1024:
        return f"{count} B"
    if count < 1024**2:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024**2:.1f} MiB"


def count_of(count: int, noun: str) -> str:
    """`1 bar`, `4 bars`: a count with its noun, plural when it is not one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
