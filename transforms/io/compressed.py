"""Compressed text inputs (.gz, .zst) read without losing a byte or a cut: a damaged file gives every byte before
the damage, then ends, and `damage_of` says where and why, so a cut shard is a counted file error, not a shorter
input that looks whole.

Beam's transparent decompression (CompressionTypes.AUTO) ends a cut .gz as if it were whole, gzip.open raises
EOFError on it, and python-zstandard's stream_reader returns nothing at all from a cut frame.
"""
from __future__ import annotations

import io
from typing import BinaryIO

from transforms.io.gzip_stream import BLOCK_BYTES, CORRUPT, TRUNCATED, Damage, GzipStream

GZIP, ZSTD = "gzip", "zstd"
SUFFIXES = {".gz": GZIP, ".zst": ZSTD}


def compression_of(path: str) -> str | None:
    """GZIP or ZSTD by the file name's last suffix, None for an uncompressed file."""
    return next((kind for suffix, kind in SUFFIXES.items() if path.lower().endswith(suffix)), None)


class ZstdStream:
    """Decompresses the zstd frames of a file in sequence; `read()` returns b"" at the end or at `damage`."""

    def __init__(self, fh: BinaryIO) -> None:
        import zstandard  # a dependency of apache-beam; loaded only for .zst inputs

        self._fh, self._zstd = fh, zstandard
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._in_frame = False  # input fed to a frame that has not ended
        self._raw_at, self.damage = 0, None

    def read(self, size: int = BLOCK_BYTES) -> bytes:  # pylint: disable=unused-argument  # a frame's block at once
        while self.damage is None:
            block = self._fh.read(BLOCK_BYTES)
            if not block:
                if self._in_frame:
                    self.damage = Damage(TRUNCATED, self._raw_at, f"the file ends inside a zstd frame "
                                                                  f"(at byte {self._raw_at})")
                return b""
            if out := self._decompress(block):
                return out
        return b""

    def _decompress(self, block: bytes) -> bytes:
        out = []
        try:
            while block:
                out.append(self._frame.decompress(block))
                self._in_frame = not self._frame.eof
                self._raw_at += len(block) - len(self._frame.unused_data)
                block = self._frame.unused_data if self._frame.eof else b""
                if self._frame.eof:
                    self._frame = self._zstd.ZstdDecompressor().decompressobj()
        except self._zstd.ZstdError as err:
            self.damage = Damage(CORRUPT, self._raw_at, f"corrupt zstd data after byte {self._raw_at}: {err}")
        return b"".join(out)


class _Raw(io.RawIOBase):
    """A GzipStream or ZstdStream as a raw stream, so io.BufferedReader can give it readline()."""

    def __init__(self, stream: GzipStream | ZstdStream) -> None:
        super().__init__()
        self.stream, self._left = stream, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._left or self.stream.read(len(buffer))
        size = min(len(buffer), len(data))
        buffer[:size] = data[:size]
        self._left = data[size:]
        return size


def open_decompressed(fh: BinaryIO, path: str) -> BinaryIO:
    """`fh` (raw bytes) itself for an uncompressed name, else a buffered reader of what it decompresses to."""
    kind = compression_of(path)
    if kind is None:
        return fh
    return io.BufferedReader(_Raw(GzipStream(fh) if kind == GZIP else ZstdStream(fh)), buffer_size=BLOCK_BYTES)


def damage_of(reader: BinaryIO) -> tuple[str, str] | None:
    """(reason, what happened) once a reader from open_decompressed has ended early, e.g. ("truncated_gzip",
    "the file ends inside the gzip member at offset 0"); None if it has not."""
    raw = getattr(reader, "raw", None)
    damage = raw.stream.damage if isinstance(raw, _Raw) else None
    if damage is None:
        return None
    return f"{damage.kind}_{GZIP if isinstance(raw.stream, GzipStream) else ZSTD}", damage.detail
