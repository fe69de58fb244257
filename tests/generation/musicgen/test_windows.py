"""Long-form windows: the offsets and prompt lengths are audiocraft's."""

from __future__ import annotations

import pytest

from generation.musicgen.windows import plan_windows


def audiocraft_windows(
    duration: float, max_duration: float = 30.0, stride: float = 18.0, frame_rate: int = 50
):
    """audiocraft 1.3.0 `MusicGen._generate_tokens`' loop, transcribed in its own units (seconds)."""
    total_gen_len = int(duration * frame_rate)
    stride_tokens = int(frame_rate * stride)
    current_gen_offset, prompt_length, windows = 0, 0, []
    if duration <= max_duration:
        return [(0.0, 0, total_gen_len)]
    while current_gen_offset + prompt_length < total_gen_len:
        time_offset = current_gen_offset / frame_rate
        chunk_duration = min(duration - time_offset, max_duration)
        max_gen_len = int(chunk_duration * frame_rate)
        windows.append((time_offset, prompt_length, max_gen_len))
        prompt_length = max(0, max_gen_len - stride_tokens)  # len(gen_tokens[..., stride_tokens:])
        current_gen_offset += stride_tokens
    return windows


def test_a_75_second_piece():
    windows = plan_windows(75 * 50)
    assert [w.offset_s for w in windows] == [0.0, 18.0, 36.0, 54.0]
    assert [w.prompt_frames for w in windows] == [0, 600, 600, 600]  # the previous 12 s of codes
    assert [w.total_frames for w in windows] == [1500, 1500, 1500, 1050]
    assert sum(w.new_frames for w in windows) == 75 * 50


@pytest.mark.parametrize("duration", [1, 8, 29.98, 30, 30.02, 31, 47, 48, 48.02, 66, 75, 90, 119.5, 120, 300])
def test_every_length_matches_audiocraft(duration):
    ours = [(w.offset_s, w.prompt_frames, w.total_frames) for w in plan_windows(int(duration * 50))]
    assert ours == audiocraft_windows(duration)
    assert sum(w.new_frames for w in plan_windows(int(duration * 50))) == int(duration * 50)


def test_steps_count_the_delay():
    (window,) = plan_windows(1500)
    assert window.steps(delay=3) == 1503  # 30 s is max_new_tokens 1503
