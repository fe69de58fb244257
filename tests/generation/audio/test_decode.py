"""Decoding seeds: every common container, and every bad input refused quickly with its message."""

from __future__ import annotations

import io
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from generation.audio.chroma import chroma
from generation.audio.decode import NOT_AUDIO, AudioLimits, decode_audio
from generation.errors import AudioInputError
from tests.audio_factory import FORMATS, encode_format, melody, pcm_wav

SECONDS = 3.0


def _tune(rate: int) -> np.ndarray:
    return melody([440.0, 554.4, 659.3], SECONDS / 3, rate)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_decodes_to_mono_32k_at_the_right_length(name):
    rate = FORMATS[name][3]
    seed = decode_audio(encode_format(name, _tune(rate)))
    assert seed.sample_rate == 32_000
    assert seed.samples.ndim == 1
    assert seed.samples.dtype == np.float32
    assert seed.duration_s == pytest.approx(SECONDS, abs=0.05)


@pytest.mark.parametrize("name", ["wav16", "mp3", "ogg-opus", "m4a"])
def test_decoding_keeps_the_melody(name):
    rate = FORMATS[name][3]
    original = chroma(melody([440.0, 554.4, 659.3], SECONDS / 3, 32_000)).argmax(-1)
    decoded = chroma(decode_audio(encode_format(name, _tune(rate))).samples).argmax(-1)
    frames = min(len(original), len(decoded))
    # Lossy codecs shift by their encoder delay: allow a frame at each note change.
    assert (original[:frames] == decoded[:frames]).float().mean() > 0.9


def test_stereo_is_downmixed_and_a_path_works_like_bytes(tmp_path):
    data = encode_format("flac", _tune(96_000), channels=2)
    path = tmp_path / "seed.flac"
    path.write_bytes(data)
    from_path, from_bytes = decode_audio(path), decode_audio(data)
    assert np.array_equal(from_path.samples, from_bytes.samples)
    assert from_path.sha256 == from_bytes.sha256
    assert "2 ch" in from_path.source


def _stereo_wav(left: np.ndarray, right: np.ndarray, rate: int) -> bytes:
    return pcm_wav([left, right], rate)


def test_a_stereo_decode_keeps_each_channel_at_the_rate_asked_for():
    """ACE-Step reads the seed in stereo at 48 kHz: left stays left, right stays right."""
    up = melody([261.6, 329.6, 392.0], SECONDS / 3, 44_100)
    down = melody([880.0, 698.5, 587.3], SECONDS / 3, 44_100)
    seed = decode_audio(_stereo_wav(up, down, 44_100), sample_rate=48_000, channels=2)
    assert (seed.sample_rate, seed.channels, seed.samples.shape[0]) == (48_000, 2, 2)
    assert seed.samples.dtype == np.float32
    assert seed.duration_s == pytest.approx(SECONDS, abs=0.01)
    for channel, tune in zip(seed.samples, (up, down), strict=True):
        wanted = chroma(tune, 44_100).argmax(-1)
        got = chroma(channel, 48_000).argmax(-1)
        frames = min(len(wanted), len(got))
        assert (wanted[:frames] == got[:frames]).float().mean() > 0.9
    mono = decode_audio(_stereo_wav(up, down, 44_100), sample_rate=48_000)
    assert mono.channels == 1 and mono.samples.ndim == 1
    # The same mix: FFmpeg's mono downmix is 3 dB above the channels' mean that `mono` takes.
    np.testing.assert_allclose(mono.samples, np.sqrt(2) * seed.mono, atol=1e-3)


def test_only_mono_and_stereo_decodes_are_offered():
    with pytest.raises(ValueError, match="channels"):
        decode_audio(encode_format("wav16", _tune(44_100)), channels=6)


def _refusal(data, limits=None) -> str:
    started = time.perf_counter()
    with pytest.raises(AudioInputError) as caught:
        decode_audio(data, limits)
    assert time.perf_counter() - started < 2.0, "refusals must be quick"
    message = str(caught.value)
    assert "\n" not in message
    return message


def _truncated_flac() -> bytes:
    data = encode_format("flac", _tune(96_000))
    return data[: len(data) // 2]


def _corrupted_ogg() -> bytes:
    data = bytearray(encode_format("ogg-vorbis", melody([440.0, 554.4, 659.3], 2.0, 44_100)))
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    return bytes(data)


def _cut_ogg() -> bytes:
    data = encode_format("ogg-vorbis", _tune(44_100))
    return data[: len(data) // 3]


def _wav(samples: np.ndarray, rate: int) -> bytes:
    return pcm_wav([samples], rate)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: b"", "empty"),
        (lambda: b"This is a text file, not a song.\n" * 50, "not audio"),
        (lambda: bytes(np.random.default_rng(1).integers(0, 256, 50_000, dtype=np.uint8)), "not audio"),
        (_truncated_flac, "damaged"),
        (_corrupted_ogg, "damaged"),
        (_cut_ogg, "damaged"),
        (lambda: _wav(np.zeros(44_100 * 3, np.float32), 44_100), "silent"),
        (lambda: _wav(melody([440.0], 0.3, 44_100), 44_100), "at least"),
        (lambda: _wav(melody([440.0], 2.0, 4_000), 4_000), "sample rate"),
    ],
    ids=[
        "empty",
        "text",
        "noise-bytes",
        "truncated",
        "corrupt",
        "cut-ogg",
        "silence",
        "too-short",
        "low-rate",
    ],
)
def test_bad_inputs_are_refused_with_their_message(make, expected):
    assert expected in _refusal(make())


def test_a_file_with_no_audio_stream_is_refused():
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:  # a video-only file
        stream = out.add_stream("ffv1", rate=5)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), index * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert "no audio track" in _refusal(buffer.getvalue())


def test_too_many_bytes_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.wav"
    path.write_bytes(_wav(_tune(44_100), 44_100))
    message = _refusal(path, AudioLimits(max_bytes=1000))
    assert "limit is 1000 B" in message


def test_a_long_track_is_refused_from_its_header():
    long_wav = _wav(melody([440.0], 20.0, 8_000), 8_000)
    assert "20.0 s long; the limit is 10.0 s" in _refusal(long_wav, AudioLimits(max_seconds=10))


def test_a_tiny_file_claiming_hours_is_refused_quickly():
    # A FLAC whose STREAMINFO claims 3 hours of samples while holding 3 seconds.
    data = bytearray(encode_format("flac", _tune(96_000)))
    offset = data.index(b"fLaC") + 4 + 4 + 10  # marker, block header, then the sample-rate field
    packed = int.from_bytes(data[offset : offset + 8], "big")
    claimed = 3 * 3600 * 96_000
    packed = (packed & ~((1 << 36) - 1)) | claimed  # the low 36 bits hold the total sample count
    data[offset : offset + 8] = struct.pack(">Q", packed)
    assert "3:00:00 long" in _refusal(bytes(data))


class _CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.furthest = 0

    def read(self, size: int = -1) -> bytes:
        chunk = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return chunk


def _live_webm(seconds: float) -> bytes:
    """A webm muxed for live streaming: its headers announce no duration at all."""
    import fractions

    import av

    buffer = io.BytesIO()
    samples = melody([440.0, 660.0], seconds / 2, 48_000)
    with av.open(buffer, "w", format="webm", options={"live": "1"}) as out:
        stream = out.add_stream("libopus", rate=48_000, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48_000, 0, fractions.Fraction(1, 48_000)
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=48_000)
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            chunk.pts = None
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def test_decoding_stops_at_the_duration_limit(monkeypatch):
    data = _live_webm(16.0)
    readers: list[_CountingReader] = []

    def counting(data_: bytes) -> _CountingReader:
        readers.append(_CountingReader(data_))
        return readers[-1]

    monkeypatch.setattr("generation.audio.decode.io.BytesIO", counting)
    assert "longer than the 5.0 s limit" in _refusal(data, AudioLimits(max_seconds=5))
    assert readers[0].furthest < len(data) * 0.75, "it read far past the limit"


# Hostile uploads: files FFmpeg would happily "play" if it were allowed to guess the format.
SDP_PORT = 47_123


def _sdp(port: int) -> bytes:
    """A session description: left to guess, FFmpeg opens UDP port `port` and waits for packets."""
    return (
        f"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=song\nc=IN IP4 127.0.0.1\nt=0 0\n"
        f"m=audio {port} RTP/AVP 96\na=rtpmap:96 L16/44100/2\n"
    ).encode()


def _udp_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            ports.add(int(line.split()[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.skipif(not Path("/proc/net/udp").exists(), reason="reads Linux's socket table")
def test_an_sdp_file_named_mp3_opens_no_socket():
    outcome: list[BaseException | None] = []

    def decode() -> None:
        try:
            decode_audio(_sdp(SDP_PORT))
            outcome.append(None)
        except AudioInputError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=decode)
    thread.start()
    opened = False
    while thread.is_alive():  # watch the socket table for as long as the decode runs
        opened = opened or SDP_PORT in _udp_ports()
        time.sleep(0.005)
    assert not opened, "the decoder opened the port the upload asked for"
    assert str(outcome[0]) == NOT_AUDIO


def test_a_concat_script_does_not_read_the_bots_files(tmp_path, monkeypatch):
    # FFmpeg's concat demuxer resolves relative names from the working directory.
    (tmp_path / "secret.flac").write_bytes(encode_format("flac", _tune(96_000)))
    monkeypatch.chdir(tmp_path)
    script = b"ffconcat version 1.0\nfile 'secret.flac'\n"
    with pytest.raises(AudioInputError) as caught:
        decode_audio(script)
    assert str(caught.value) == NOT_AUDIO


@pytest.mark.parametrize(
    "data",
    [
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nsecret.flac\n#EXT-X-ENDLIST\n",
        b"ffconcat version 1.0\nfile '/etc/passwd'\n",
        b"[playlist]\nFile1=secret.flac\n",
        b"RIFF\x10\x00\x00\x00AVI LIST",  # a RIFF file that is not WAVE
    ],
    ids=["hls", "concat-absolute", "pls", "riff-avi"],
)
def test_files_that_are_not_an_audio_container_are_refused(data):
    with pytest.raises(AudioInputError) as caught:
        decode_audio(data * 20)
    assert str(caught.value) == NOT_AUDIO


def test_an_id3_tag_before_flac_or_mp3_is_skipped():
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 20]) + b"\x00" * 20
    for name in ("flac", "mp3"):
        seed = decode_audio(tag + encode_format(name, _tune(FORMATS[name][3])))
        assert seed.duration_s == pytest.approx(SECONDS, abs=0.05), name
