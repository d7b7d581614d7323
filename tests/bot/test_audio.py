"""Audio ingestion: every accepted format decodes; every hostile file gets its own clear answer."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from bot.audio import DecodeLimits, decode, find_ffmpeg, find_ffprobe, read_upload
from bot.errors import AudioRejected
from model_store.features import SAMPLE_RATE
from tests.audio_factory import ENCODINGS, encode, encode_tagged, synth, video, write_wav
from tests.hostile_corpus import FOUNDATION_REFUSALS, build_case

LIMITS = DecodeLimits(max_bytes=64 << 20, max_seconds=20 * 60, min_seconds=10.0, timeout_s=60)


@pytest.mark.parametrize("fmt", sorted(ENCODINGS))
def test_each_accepted_format_round_trips(tmp_path: Path, fmt: str) -> None:
    """Each format phones and PCs hold decodes to 16 kHz mono of the right length and pitch."""
    path = encode(tmp_path / f"song{ENCODINGS[fmt][0]}", fmt, seconds=12.0)
    decoded = decode(path, LIMITS)
    assert decoded.samples.dtype == np.int16 and decoded.samples.ndim == 1
    assert decoded.seconds == pytest.approx(12.0, abs=0.1)
    assert decoded.source_rate in (44100, 48000)
    reference = synth(12.0, rate=SAMPLE_RATE)
    got = decoded.as_float()[: reference.size]
    spectrum = np.abs(np.fft.rfft(got[: SAMPLE_RATE * 4]))
    want = np.abs(np.fft.rfft(reference[: SAMPLE_RATE * 4]))
    assert np.corrcoef(spectrum, want)[0, 1] > 0.9  # the same music came out


def test_format_is_detected_by_content_not_name(tmp_path: Path) -> None:
    """An OGG file named .mp3 and an MP3 named .wav are decoded as what they really are."""
    ogg = encode(tmp_path / "a.ogg", "ogg")
    mp3 = encode(tmp_path / "b.mp3", "mp3")
    assert decode(ogg.rename(tmp_path / "really_ogg.mp3"), LIMITS).format == "ogg"
    assert decode(mp3.rename(tmp_path / "really_mp3.wav"), LIMITS).format == "mp3"


def test_video_file_with_audio_track_is_accepted(tmp_path: Path) -> None:
    """An MP4 video with an audio track yields its audio."""
    wav = write_wav(tmp_path / "a.wav", synth(11.0), 44100)
    out = video(tmp_path / "clip.mp4", seconds=11, audio=wav, size="64x64")
    assert decode(out, LIMITS).seconds == pytest.approx(11.0, abs=0.2)


@pytest.mark.parametrize("name", sorted(FOUNDATION_REFUSALS))
def test_hostile_file_gets_its_specific_message(tmp_path: Path, name: str) -> None:
    """Each hostile upload is refused with its own reason code and a human message."""
    code, words = FOUNDATION_REFUSALS[name]
    with pytest.raises(AudioRejected) as err:
        decode(build_case(tmp_path, name), LIMITS)
    assert err.value.code == code
    assert words in err.value.message
    assert "\n" not in err.value.message and len(err.value.message) < 200


def test_eight_channel_96k_wav_is_downmixed(tmp_path: Path) -> None:
    """An 8-channel 96 kHz WAV is accepted and folded to 16 kHz mono."""
    path = write_wav(tmp_path / "surround.wav", synth(11.0, rate=96000, channels=8), 96000)
    decoded = decode(path, LIMITS)
    assert decoded.source_rate == 96000
    assert decoded.seconds == pytest.approx(11.0, abs=0.05)


def test_decoder_wall_clock_limit(tmp_path: Path) -> None:
    """A decode that runs past its time limit is killed and reported, not waited on."""
    path = encode(tmp_path / "long.flac", "flac", seconds=600.0, channels=1, rate=16000)
    with pytest.raises(AudioRejected) as err:
        decode(path, DecodeLimits(64 << 20, 1200, 10, timeout_s=0.05))
    assert err.value.code == "timeout"


def test_mpeg_without_audio_stream(tmp_path: Path) -> None:
    """A video with no sound is refused as having no audio track."""
    out = video(tmp_path / "silent_film.mp4", seconds=2, colour="red")
    with pytest.raises(AudioRejected) as err:
        decode(out, LIMITS)
    assert err.value.code == "no_audio"


def test_colon_in_a_relative_file_name_is_a_file_not_a_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`AC:DC - Song.ogg` given relative to the current folder decodes (ffmpeg gets file:...)."""
    encode(tmp_path / "AC:DC - Song.ogg", "ogg")
    monkeypatch.chdir(tmp_path)
    decoded = decode(Path("AC:DC - Song.ogg"), LIMITS)
    assert decoded.format == "ogg" and decoded.seconds == pytest.approx(12.0, abs=0.1)


def _special_files(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a symlink to it, /dev/zero, a symlink to /dev/zero and a folder."""
    fifo = tmp_path / "song.mp3"
    os.mkfifo(fifo)
    (tmp_path / "link.mp3").symlink_to(fifo)
    (tmp_path / "zero.mp3").symlink_to("/dev/zero")
    (tmp_path / "folder.mp3").mkdir()
    return {
        "fifo": fifo,
        "fifo link": tmp_path / "link.mp3",
        "/dev/zero": Path("/dev/zero"),
        "zero link": tmp_path / "zero.mp3",
        "folder": tmp_path / "folder.mp3",
    }


@pytest.mark.timeout(30)
def test_special_files_are_refused_before_they_are_opened(tmp_path: Path) -> None:
    """FIFOs, devices and folders (also behind symlinks) are `not_a_file`, at once.

    Before, decoding a FIFO blocked in open() and hashing /dev/zero never ended.
    """
    for what, path in _special_files(tmp_path).items():
        for step in (lambda p: decode(p, LIMITS), lambda p: read_upload(p, LIMITS)):
            with pytest.raises(AudioRejected) as err:
                step(path)
            assert err.value.code == "not_a_file", what
            assert "not a regular file" in err.value.message
    with pytest.raises(AudioRejected) as err:
        decode(tmp_path / "gone.mp3", LIMITS)
    assert err.value.code == "unreadable" and "Could not read the file" in err.value.message


@pytest.mark.timeout(30)
async def test_service_teach_refuses_a_fifo_before_hashing(mimi, tmp_path: Path) -> None:
    """The service (the bot's path too) refuses a FIFO instead of hanging on its hash."""
    for path in (_special_files(tmp_path)["fifo link"], Path("/dev/zero")):
        with pytest.raises(AudioRejected) as err:
            await mimi.teach(1, "Artist", path)
        assert err.value.code == "not_a_file"


# A title tag that reads like the lines ffmpeg's log prints about the real stream.
FAKE_STREAM = "Stream #0:0: Audio: pcm_s16le, 44100 Hz"
FAKE_DURATION = "Duration: 05:00:00.00, start: 0.000000, bitrate: 1411 kb/s"


def test_tags_cannot_fake_the_source_rate_or_duration(tmp_path: Path) -> None:
    """Rate and length come from ffprobe's JSON, not from a tag that mimics ffmpeg's log."""
    low = encode_tagged(tmp_path / "low.wav", seconds=12, rate=2000, title=FAKE_STREAM)
    with pytest.raises(AudioRejected) as err:
        decode(low, LIMITS)
    assert err.value.code == "bad_rate" and "2000 Hz" in err.value.message
    short = encode_tagged(tmp_path / "short.wav", seconds=3, title=FAKE_DURATION)
    with pytest.raises(AudioRejected) as err:
        decode(short, LIMITS)
    assert err.value.code == "too_short"
    assert decode(encode(tmp_path / "fine.wav", "wav"), LIMITS).declared_seconds == 12.0


def test_without_ffprobe_the_log_is_read_safely(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An ffmpeg with no ffprobe beside it (imageio-ffmpeg) still ignores fake tags, and says so."""
    (tmp_path / "bin").mkdir()
    exe = tmp_path / "bin" / "ffmpeg"  # a copy: a symlink would lead back to the real ffprobe
    exe.write_bytes(Path(find_ffmpeg()).read_bytes())
    exe.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="bot.audio"):
        assert find_ffprobe(str(exe)) is None
    assert "no ffprobe next to" in caplog.text
    low = encode_tagged(tmp_path / "low.wav", seconds=12, rate=2000, title=FAKE_STREAM)
    short = encode_tagged(tmp_path / "short.wav", seconds=3, title=FAKE_DURATION)
    for path, code in ((low, "bad_rate"), (short, "too_short")):
        with pytest.raises(AudioRejected) as err:
            decode(path, LIMITS, str(exe))
        assert err.value.code == code
    assert decode(encode(tmp_path / "ok.wav", "wav"), LIMITS, str(exe)).source_rate == 44100
