"""The hostile-upload corpus: crafted files, each with the one answer a demanding user expects.

Every case is a file built from numpy or the real ffmpeg in a few milliseconds (claims of hours
or gigabytes are claims in headers, never real data; the one 64 MiB file is sparse), the name
its uploader claims for it, and the outcome: an error code of bot.errors, or ACCEPTED for a
file that really is usable audio. `corpus(tmp_path_factory)` builds it once per test session.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.audio_factory import (
    ENCODINGS,
    encode,
    retag,
    sine,
    synth,
    transcode,
    video,
    write_wav,
)

ACCEPTED = "accepted"
# What every refusal with a given code says, in the service and in the bot alike.
CODE_WORDS = {
    "empty": "empty",
    "not_audio": "doesn't look like audio",
    "corrupt": "corrupt",
    "no_audio": "no audio track",
    "too_short": "too short",
    "too_long": "longer than the",
    "too_big": "too big",
    "silent": "silent",
    "bad_rate": "too low to carry music",
    "duplicate": "already",
}
# Songs the guild under attack already has; built before the cases (some cases copy them).
RESIDENTS = ("resident_a.mp3", "resident_b.flac")
LEGIT = "legit.mp3"  # a plain good song, sent under hostile file names
SOURCES = "_sources"
SECONDS = 10.5  # accepted cases hold just over one 10 s clip: cheap to ingest and to guess


@dataclass(frozen=True)
class Case:
    """One hostile upload and the answer it must get."""

    name: str  # the test id and the (safe) file name on disk
    build: Callable[[Path], object]  # writes the file at the given path
    expect: str  # an error code of bot.errors, or ACCEPTED
    words: str = ""  # what the refusal must say besides its code's words
    filename: str | None = None  # the name the uploader claims, when it is not `name`
    stored_as: str | None = None  # the file name an accepted upload is stored under
    guess: str | None = None  # the /guess outcome where it differs (a guess needs only 3 s)

    @property
    def claimed(self) -> str:
        """The file name as the uploader sends it."""
        return self.name if self.filename is None else self.filename

    @property
    def guess_expect(self) -> str:
        """What /guess answers for this file."""
        return self.guess or self.expect


# --- builders ---------------------------------------------------------------------------------


def _source(path: Path, name: str) -> Path:
    """A prepared source file of the corpus folder that `path` lies in."""
    return path.parent / SOURCES / name


def _needs_sources(build: Callable[[Path], object]) -> Callable[[Path], object]:
    """Mark a builder that copies a prepared source (see build_sources)."""
    build.needs_sources = True  # type: ignore[attr-defined]
    return build


def _copy_of(name: str) -> Callable[[Path], object]:
    """A builder writing a byte copy of one prepared source."""
    return _needs_sources(lambda path: shutil.copyfile(_source(path, name), path))


def _encoded(fmt: str, seconds: float = SECONDS, **kw) -> Callable[[Path], object]:
    """A builder encoding fresh synthetic music (voice 2: unlike the residents) as `fmt`."""

    def build(path: Path) -> None:
        out = path.with_name(f"{path.name}.enc{ENCODINGS[fmt][0]}")  # ffmpeg picks by suffix
        encode(out, fmt, seconds, voice=2, seed=3, **kw).rename(path)

    return build


def _via_wav(*args: str, seconds: float = SECONDS, channels: int = 2, rate: int = 44100):
    """A builder piping synthetic music through ffmpeg with output `args` (codec, container)."""

    def build(path: Path) -> None:
        src = write_wav(
            path.with_name(path.name + ".src.wav"),
            synth(seconds, rate=rate, voice=2, seed=4, channels=channels),
            rate,
        )
        transcode(src, path, *args)
        src.unlink()

    return build


def _wav_header(rate: int, channels: int, bits: int, data_size: int, *, fmt_tag: int = 1) -> bytes:
    """A canonical 44-byte WAV header; sizes are what the header claims, not what follows."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * align, align, bits)
    riff = min(0xFFFFFFFF, 4 + 8 + len(fmt) + 8 + data_size)
    return (
        b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt))
        + fmt + b"data" + struct.pack("<I", min(0xFFFFFFFF, data_size))
    )  # fmt: skip


def _pcm16(samples: np.ndarray) -> bytes:
    """Float samples as 16-bit little-endian PCM bytes."""
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def _raw_wav(header: Callable[[int], bytes], samples: bytes) -> Callable[[Path], object]:
    """A builder writing a hand-made header (given the payload size) and then the payload."""
    return lambda path: path.write_bytes(header(len(samples)) + samples)


def _png_bytes() -> bytes:
    """A tiny valid PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0\0"))
    return raw + chunk(b"IEND", b"")


def _id3(size: int, flags: int = 0) -> bytes:
    """An ID3v2.4 tag header announcing `size` bytes of tag body."""
    syncsafe = bytes((size >> s) & 0x7F for s in (21, 14, 7, 0))
    return b"ID3\x04\x00" + bytes([flags]) + syncsafe


def _flac_claim(seconds_real: float, total_samples: int, md5: bytes | None = None):
    """A builder: real FLAC whose STREAMINFO claims `total_samples` (and maybe another MD5)."""

    def build(path: Path) -> None:
        _encoded("flac", seconds_real)(path)
        raw = bytearray(path.read_bytes())
        info = 8  # "fLaC" + metadata block header; STREAMINFO comes first
        packed = int.from_bytes(raw[info + 10 : info + 18], "big")
        if total_samples:
            packed = (packed >> 36 << 36) | total_samples
        raw[info + 10 : info + 18] = packed.to_bytes(8, "big")
        if md5 is not None:
            raw[info + 18 : info + 34] = md5
        path.write_bytes(bytes(raw))

    return build


def _truncated(fmt: str, seconds: float, keep: float) -> Callable[[Path], object]:
    """A builder: a real `seconds`-long file cut to its first `keep` fraction of bytes."""

    def build(path: Path) -> None:
        _encoded(fmt, seconds)(path)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return build


def _garbage_in_middle(path: Path) -> None:
    """16 s of MP3 with 64 KiB of random bytes spliced into the middle."""
    _encoded("mp3", 16.0)(path)
    data = path.read_bytes()
    mid = len(data) // 2
    path.write_bytes(data[:mid] + np.random.default_rng(1).bytes(64 << 10) + data[mid:])


def _huge_id3(path: Path) -> None:
    """Real MP3 audio behind a 2 MiB ID3 tag (cover art, lyrics...)."""
    _encoded("mp3")(path)
    path.write_bytes(_id3(2 << 20) + bytes(2 << 20) + path.read_bytes())


def _sparse_riff(path: Path) -> None:
    """'RIFF' and then zeros to 64 MiB + 1 KiB (sparse on disk: nothing is really written)."""
    with path.open("wb") as f:
        f.write(b"RIFF")
        f.truncate((64 << 20) + 1024)


def _symlink_to_passwd(path: Path) -> None:
    """A symlink to the system's account list (a local secret where there is none)."""
    target = Path("/etc/passwd")
    if not target.is_file():
        target = path.with_name("secret.txt")
        target.write_text("root:x:0:0:root:/root:/bin/bash\n")
    os.symlink(target, path)


def _elf(path: Path) -> None:
    """A real program (whose machine code happens to hold MPEG-like sync bytes)."""
    true = shutil.which("true")
    data = Path(true).read_bytes() if true else b""
    if not data.startswith(b"\x7fELF"):
        frame = bytes.fromhex("fffb9064") + bytes(413)  # one 128 kbit/s MPEG frame, repeated
        data = b"\x7fELF\x02\x01\x01" + bytes(57) + frame * 8
    path.write_bytes(data)


def _exe(path: Path) -> None:
    """A Windows program's header, with MPEG-looking frames after it."""
    frame = bytes.fromhex("fffb9064") + bytes(413)
    path.write_bytes(b"MZ\x90\x00\x03" + bytes(59) + b"PE\0\0" + frame * 8)


def _zip_bomb(path: Path) -> None:
    """A 50 KiB ZIP that inflates to 50 MiB of zeros, its entry named song.wav."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("song.wav", bytes(50 << 20))
    path.write_bytes(buf.getvalue())


def _tone(seconds: float, rate: int, value: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`value(t)` sampled for `seconds` at `rate`, as float32."""
    return value(np.arange(int(seconds * rate)) / rate).astype(np.float32)


def _float_wav(samples: np.ndarray, rate: int) -> Callable[[Path], object]:
    """A builder writing 32-bit float WAV with exactly these values (NaN and inf included)."""
    data = samples.astype("<f4").tobytes()
    return lambda path: path.write_bytes(_wav_header(rate, 1, 32, len(data), fmt_tag=3) + data)


def _nan_sprinkled() -> np.ndarray:
    """Music with 1 % NaN samples and a few infinities: damaged, but still the song."""
    music = synth(SECONDS, rate=16000, voice=2, seed=5).copy()
    music[::100] = np.nan
    music[50::1000] = np.inf
    return music


def _text(content: str) -> Callable[[Path], object]:
    """A builder writing `content` as UTF-8 text."""
    return lambda path: path.write_text(content, encoding="utf-8")


def _bytes(content: bytes) -> Callable[[Path], object]:
    """A builder writing `content`."""
    return lambda path: path.write_bytes(content)


def _video(with_audio: bool, container: str) -> Callable[[Path], object]:
    """A builder: a small real video (32x32, 5 fps), with or without a music track."""

    def build(path: Path) -> None:
        if not with_audio:
            video(path, seconds=2.0, fps=5, container=container)
            return
        src = write_wav(
            path.with_name(path.name + ".src.wav"), synth(SECONDS, voice=2, seed=6), 44100
        )
        video(path, seconds=SECONDS, audio=src, fps=5, container=container)
        src.unlink()

    return build


@_needs_sources
def _retagged(path: Path) -> None:
    """Resident B re-muxed with other tags: new bytes, the same audio."""
    src = _source(path, RESIDENTS[1])
    retag(src, path, "Totally New", "-f", "flac")


PASSWD_PLAYLIST = "#EXTM3U\n#EXTINF:123,Song\n/etc/passwd\nfile:///etc/shadow\n"
LONG_NAME = "a" * 10_000 + ".mp3"
MENTION_NAME = "@everyone **x** <@123456789012345678>.mp3"

# fmt: off
CASES: tuple[Case, ...] = (
    # --- the foundation corpus ---
    # random bytes named .mp3: no audio format matches; say it is not audio
    Case("random.mp3", _bytes(np.random.default_rng(7).bytes(200_000)), "not_audio"),
    # a 0-byte upload: the one answer that needs no decoding
    Case("empty.mp3", _bytes(b""), "empty"),
    # 24 s of MP3 cut to 5 s: the header knows it was longer, so say truncated (a guess needs 3 s)
    Case("truncated.mp3", _truncated("mp3", 24.0, 0.2), "corrupt", "truncated",
         guess=ACCEPTED),
    # a text file named .mp3: say what it is
    Case("notes.mp3", _text("My favourite songs:\n1. something\n2. another\n" * 20), "not_audio",
         "a text file"),
    # a PNG named .ogg: say what it is
    Case("image.ogg", _bytes(_png_bytes()), "not_audio", "a PNG image"),
    # 21 minutes of real (low-bitrate) music: over the 20 min limit
    Case("21_minutes.mp3", lambda p: sine(
        p, seconds=1260, freq=330, rate=8000, args=("-c:a", "libmp3lame", "-b:a", "8k")),
        "too_long", "20 min limit"),
    # half a second of real FLAC: too short, and says how long it is
    Case("half_second.flac", _encoded("flac", 0.5), "too_short", "0.5 s"),
    # 30 s of digital silence: nothing to learn
    Case("silence.wav", lambda p: write_wav(p, np.zeros(30 * 8000, np.float32), 8000), "silent"),
    # 64 MiB + 1 KiB claiming to be RIFF: over the size limit before any decoding
    Case("huge.wav", _sparse_riff, "too_big"),
    # --- named in the issue ---
    # real MP3 behind a 2 MiB ID3 tag (cover art): it is a song, accept it
    Case("huge_id3.mp3", _huge_id3, ACCEPTED),
    # an MP4 video with a music track: the track is the song, accept it
    Case("video_with_audio.mp4", _video(True, "mp4"), ACCEPTED),
    # WAV whose header claims 10 h but holds 10.5 s: the claim costs nothing; the 10.5 s are used
    Case("claims_10h.wav", _raw_wav(lambda n: _wav_header(16000, 1, 16, 10 * 3600 * 32000),
                                    _pcm16(synth(SECONDS, rate=16000, voice=2, seed=7))),
         ACCEPTED),
    # FLAC whose STREAMINFO claims 10 h but holds 4 s: truncated, said with both lengths
    Case("claims_10h.flac", _flac_claim(4.0, 10 * 3600 * 44100), "corrupt", "of 10 h could",
         guess=ACCEPTED),
    # a WAV at 1 sample per second: no music fits; say the rate
    Case("rate_1hz.wav", _raw_wav(lambda n: _wav_header(1, 1, 16, n), _pcm16(synth(1.0, rate=20))),
         "bad_rate", "(1 Hz)"),
    # a float WAV of nothing but NaN: no sound in it at all
    Case("all_nan.wav", _float_wav(np.full(int(SECONDS * 8000), np.nan), 8000), "silent"),
    # music whose float WAV has 1 % NaN and some inf samples: damaged clicks, still the song
    Case("nan_sprinkled.wav", _float_wav(_nan_sprinkled(), 16000), ACCEPTED),
    # a symlink to /etc/passwd (an import folder can hold one): text, and nothing of it is echoed
    Case("passwd_link.mp3", _symlink_to_passwd, "not_audio", "a text file"),
    # a good song uploaded as ../../etc/passwd.mp3: accepted, stored as its base name only
    Case("traversal.mp3", _copy_of(LEGIT), ACCEPTED, filename="../../etc/passwd.mp3",
         stored_as="passwd.mp3"),
    # 1 MiB of zeros named .flac: no format starts like that
    Case("zeros.flac", _bytes(bytes(1 << 20)), "not_audio", "not a format I recognise"),
    # --- more crafted containers ---
    # WAV with data size 0xFFFFFFFF (a streaming header) and 2 s of samples: too short, not huge
    Case("wav_size_ffffffff.wav", _raw_wav(lambda n: _wav_header(8000, 1, 16, 0xFFFFFFFF),
                                           _pcm16(synth(2.0, rate=8000))), "too_short", "2.0 s"),
    # a WAV header and no samples: 0 s of audio
    Case("header_only.wav", _bytes(_wav_header(44100, 2, 16, 0)), "too_short", "0.0 s"),
    # 16 s of MP3 with 64 KiB of garbage in the middle: the decoder resyncs; it is the song
    Case("garbage_middle.mp3", _garbage_in_middle, ACCEPTED),
    # 24 s of Ogg/Vorbis cut to 1/5: Ogg declares no length, so it is honestly too short (~5 s)
    Case("truncated.ogg", _truncated("ogg", 24.0, 0.2), "too_short", guess=ACCEPTED),
    # 24 s of FLAC cut to 1/5: STREAMINFO knows the length, so say truncated
    Case("truncated.flac", _truncated("flac", 24.0, 0.2), "corrupt", "truncated",
         guess=ACCEPTED),
    # FLAC with a wrong MD5 signature but intact frames: the audio is fine, accept it
    Case("wrong_md5.flac", _flac_claim(SECONDS, 0, md5=b"\xab" * 16), ACCEPTED),
    # 100 000 empty ID3 tags stacked (1 MB): refused at once as corrupt, no tag-by-tag crawl
    Case("stacked_id3.mp3", _bytes(_id3(0) * 100_000), "corrupt", "MP3 tag"),
    # an ID3 tag whose size points far past the end of the file
    Case("id3_past_eof.mp3", _bytes(_id3(0x0FFFFFFF) + bytes(100)), "corrupt", "MP3 tag"),
    # polyglot: an ID3 tag and then a PNG: it is a picture, whatever its tag says
    Case("id3_then_png.mp3", _bytes(_id3(32) + bytes(32) + _png_bytes()), "not_audio",
         "a PNG image"),
    # a video with no sound: say so
    Case("no_audio.mp4", _video(False, "mp4"), "no_audio"),
    # a Matroska video with no sound: say so
    Case("no_audio.mkv", _video(False, "matroska"), "no_audio"),
    # a ZIP that inflates to 50 MiB: never opened; it is an archive
    Case("zip_bomb.mp3", _zip_bomb, "not_audio", "a ZIP archive"),
    # gzip of 20 MiB of zeros named .wav: never inflated; it is an archive
    Case("gzip_bomb.wav", _bytes(gzip.compress(bytes(20 << 20), mtime=0)), "not_audio",
         "a gzip archive"),
    # --- playlists and scripts ffmpeg could follow (it must not) ---
    # M3U playlist naming /etc/passwd: text, never followed
    Case("playlist.m3u", _text(PASSWD_PLAYLIST), "not_audio", "a text file"),
    # the same playlist named .mp3
    Case("playlist.mp3", _text(PASSWD_PLAYLIST), "not_audio", "a text file"),
    # PLS playlist with file:// and http:// entries
    Case("playlist.pls", _text("[playlist]\nFile1=file:///etc/passwd\n"
                               "File2=http://127.0.0.1:9/x.mp3\nNumberOfEntries=2\n"),
         "not_audio", "a text file"),
    # ffconcat script pulling in local and remote files
    Case("script.ffconcat", _text("ffconcat version 1.0\nfile '/etc/passwd'\n"
                                  "file 'http://127.0.0.1:9/a.mp3'\n"), "not_audio", "a text file"),
    # HLS playlist of remote segments
    Case("stream.m3u8", _text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                              "http://127.0.0.1:9/seg0.ts\n#EXT-X-ENDLIST\n"),
         "not_audio", "a text file"),
    # SDP session description (ffmpeg's sdp demuxer would open network sockets)
    Case("session.sdp", _text("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\n"
                              "m=audio 9 RTP/AVP 0\n"), "not_audio", "a text file"),
    # --- other files renamed .mp3 ---
    # SVG with a script: text
    Case("drawing.mp3", _text('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
                              "<script>alert(1)</script></svg>"), "not_audio", "a text file"),
    # an HTML page: text
    Case("page.mp3", _text("<!DOCTYPE html><html><body><h1>hi</h1></body></html>\n"),
         "not_audio", "a text file"),
    # a PDF document
    Case("document.mp3", _bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"), "not_audio",
         "a PDF document"),
    # a PNG image
    Case("picture.mp3", _bytes(_png_bytes()), "not_audio", "a PNG image"),
    # a Windows program with MPEG-like frames inside
    Case("program.mp3", _exe, "not_audio", "a Windows program"),
    # a Linux program (its code holds MPEG-like sync bytes)
    Case("elf.mp3", _elf, "not_audio", "a program"),
    # one byte
    Case("one_byte.mp3", _bytes(b"\xff"), "not_audio"),
    # --- real audio at the edges ---
    # 2 s of mono 8 kHz speech-band audio: legit but too short, for a guess too
    Case("tiny_8k.wav", lambda p: write_wav(p, synth(2.0, rate=8000), 8000), "too_short", "2.0 s"),
    # a constant DC offset: no sound, however high the level reads
    Case("dc_offset.wav", lambda p: write_wav(p, _tone(SECONDS, 8000, lambda t: 0 * t + 0.5), 8000),
         "silent"),
    # a full-scale square wave driven 10x into clipping: loud, but sound; accept it
    Case("clipping_square.wav", _float_wav(
        _tone(SECONDS, 16000, lambda t: 10 * np.sign(np.sin(2 * np.pi * 220 * t))), 16000),
        ACCEPTED),
    # 96 kHz 24-bit studio WAV
    Case("studio_96k_24bit.wav", lambda p: write_wav(
        p, synth(SECONDS, rate=96000, voice=2, seed=8), 96000, subtype="PCM_24"), ACCEPTED),
    # 6-channel (5.1) WAV: folded to mono
    Case("surround_6ch.wav", lambda p: write_wav(
        p, synth(SECONDS, rate=22050, voice=2, seed=9, channels=6), 22050), ACCEPTED),
    # Opus in Matroska
    Case("opus.mkv", _via_wav("-c:a", "libopus", "-b:a", "48k", "-f", "matroska"), ACCEPTED),
    # Opus in WebM
    Case("opus.webm", _via_wav("-c:a", "libopus", "-b:a", "48k", "-f", "webm"), ACCEPTED),
    # AIFF
    Case("song.aiff", _via_wav("-c:a", "pcm_s16be", "-f", "aiff"), ACCEPTED),
    # WMA
    Case("song.wma", _via_wav("-c:a", "wmav2", "-b:a", "64k", "-f", "asf"), ACCEPTED),
    # Apple Lossless in M4A
    Case("alac.m4a", _via_wav("-c:a", "alac", "-f", "ipod"), ACCEPTED),
    # --- what the guild already has ---
    # a byte copy of a song this guild already has
    Case("resident_copy.mp3", _copy_of(RESIDENTS[0]), "duplicate", guess=ACCEPTED),
    # the same song re-tagged (new bytes, same audio)
    Case("resident_retagged.flac", _retagged, "duplicate", guess=ACCEPTED),
    # --- hostile file names on a good song (the name is never a path; stored printable) ---
    # NUL bytes in the name
    Case("nul_name.mp3", _copy_of(LEGIT), ACCEPTED, filename="a\x00b\x00.mp3", stored_as="ab.mp3"),
    # a 10 kB name: stored cut to 200 characters
    Case("long_name.mp3", _copy_of(LEGIT), ACCEPTED, filename=LONG_NAME,
         stored_as=LONG_NAME[:200]),
    # right-to-left override disguising an .exe: the override is dropped
    Case("rtl_name.mp3", _copy_of(LEGIT), ACCEPTED, filename="song\u202e3pm.exe",
         stored_as="song3pm.exe"),
    # a Windows path: only the base name is kept
    Case("windows_path.mp3", _copy_of(LEGIT), ACCEPTED,
         filename="C:\\Windows\\..\\..\\boot.ini.mp3", stored_as="boot.ini.mp3"),
    # a name that pings and formats: stored as typed, shown inert by the bot
    Case("mention_name.mp3", _copy_of(LEGIT), ACCEPTED, filename=MENTION_NAME,
         stored_as=MENTION_NAME),
)
# fmt: on
BY_NAME = {case.name: case for case in CASES}
FOUNDATION = (
    "random.mp3",
    "empty.mp3",
    "truncated.mp3",
    "notes.mp3",
    "image.ogg",
    "21_minutes.mp3",
    "half_second.flac",
    "silence.wav",
    "huge.wav",
)


# The foundation's answers, name -> (code, words the message must contain); the whole corpus
# goes through the service and the bot in test_hostile.py / test_discord_e2e.py.
FOUNDATION_REFUSALS: dict[str, tuple[str, str]] = {
    name: (BY_NAME[name].expect, BY_NAME[name].words or CODE_WORDS[BY_NAME[name].expect])
    for name in FOUNDATION
}
# An absolute path of this machine, as no answer to a hostile upload may show one.
PATHLIKE = re.compile(r"(?<![\w.])/(?:tmp|etc|home|root|usr|proc|var|work|dev)\b")


def build_sources(folder: Path) -> None:
    """The resident songs and the plain good song that some cases copy."""
    src = folder / SOURCES
    src.mkdir(parents=True, exist_ok=True)
    encode(src / RESIDENTS[0], "mp3", 12.0, voice=0, seed=1)
    encode(src / RESIDENTS[1], "flac", 12.0, voice=4, seed=2)
    encode(src / LEGIT, "mp3", SECONDS, voice=1, seed=3)


def build_case(folder: Path, name: str) -> Path:
    """Build one case (and the sources it copies, if missing) in `folder`; its path."""
    build = BY_NAME[name].build
    if getattr(build, "needs_sources", False) and not (folder / SOURCES / LEGIT).is_file():
        build_sources(folder)
    path = folder / name
    build(path)
    return path


def build_corpus(folder: Path) -> dict[str, Path]:
    """Every case built in `folder`: case name -> path."""
    build_sources(folder)
    with ThreadPoolExecutor(max_workers=4) as pool:  # mostly waiting on ffmpeg children
        for done in [pool.submit(case.build, folder / case.name) for case in CASES]:
            done.result()  # a builder's failure fails the build, loudly
    missing = [c.name for c in CASES if not (folder / c.name).exists()]
    assert not missing, f"corpus cases not built: {missing}"
    return {case.name: folder / case.name for case in CASES}


_BUILT: dict[Path, dict[str, Path]] = {}


def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The corpus, built once per test session under its temporary directory."""
    key = tmp_path_factory.getbasetemp()
    if key not in _BUILT:
        _BUILT[key] = build_corpus(tmp_path_factory.mktemp("hostile"))
    return _BUILT[key]


def source(paths: dict[str, Path], name: str) -> Path:
    """A prepared source (a resident or the plain good song) of a built corpus."""
    return next(iter(paths.values())).parent / SOURCES / name
