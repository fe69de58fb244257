"""How a piece longer than the model's 30 s is cut into generation windows, as audiocraft does it.

audiocraft 1.3.0, `MusicGen._generate_tokens`: windows of at most 30 s that start every 18 s; each
window after the first is prompted with the last 12 s of codes of the one before and conditioned on
the melody from its own time offset. The new codes of every window are concatenated and decoded
once, so there is no seam to hide.
"""

from __future__ import annotations

from dataclasses import dataclass

FRAME_RATE = 50
MAX_WINDOW_S = 30.0
STRIDE_S = 18.0


@dataclass(frozen=True)
class Window:
    """One call of the language model, in frames of codes (50 per second)."""

    index: int
    offset_frames: int  # where the window starts in the finished piece
    prompt_frames: int  # codes carried over from the previous window
    total_frames: int  # codes in the window, prompt included

    @property
    def new_frames(self) -> int:
        return self.total_frames - self.prompt_frames

    @property
    def offset_s(self) -> float:
        return self.offset_frames / FRAME_RATE

    def steps(self, delay: int) -> int:
        """Decoding steps: one per new frame plus the codebook delay of the interleaving pattern."""
        return self.new_frames + delay


def frames_for(duration_s: float) -> int:
    """audiocraft's `int(duration * frame_rate)`: 2.3 s is 114 frames, not 115."""
    return int(duration_s * FRAME_RATE)


def plan_windows(total_frames: int, max_window_frames: int = 1500, stride_frames: int = 900) -> list[Window]:
    """The windows that generate `total_frames` frames (audiocraft's loop, in whole frames)."""
    if total_frames <= 0:
        raise ValueError("total_frames must be positive")
    windows: list[Window] = []
    offset, prompt = 0, 0
    while offset + prompt < total_frames:
        length = min(total_frames - offset, max_window_frames)
        windows.append(Window(len(windows), offset, prompt, length))
        prompt = max(0, length - stride_frames)
        offset += stride_frames
    return windows


def total_steps(duration_s: float, delay: int = 3, frame_rate: int = FRAME_RATE) -> int:
    """Decoding steps for a piece of `duration_s` (MusicGen-melody: 50 Hz, a delay of 3)."""
    return sum(window.steps(delay) for window in plan_windows(max(1, int(duration_s * frame_rate))))
