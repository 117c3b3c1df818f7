"""Versioned bitstream container of llic_jax (the ``.llic`` file format).

A container holds everything a decoder needs besides the model weights: a fingerprint of
the weights and coding tables it was made with, the coded and the padded image size, the
padding mode and where the image sits in the padded canvas (its placement), the
orientation the image was coded in (orientation.py), whether the decoder applies the
codec's post-filter (layers/post_filter.py) and whether as the mean over the eight
orientations (its self-ensemble), whether a per-image Wiener filter follows it
(wiener_filter.py, whose taps are the last stream), a CRC32 of the quantised latent
symbols and one or more range-coded streams. The encoder writes format
version 2, or version 3 where the latents were quantised coarser than the weights' own
step (entropy/coarseness.py); version 1 streams (sessions before 2026-12) still decode.

Layout of format version 2 (the default; big-endian ``struct`` codes in brackets,
``v`` = unsigned LEB128 varint, 7 bits per byte, least significant group first, in its
shortest form)::

    size  field
    4     magic b"LLIC"
    1     format version = 2                                        [B]
    8     fingerprint (hash of weights + tables, computed by the caller)
    v     height of the coded image, 1..65535 (the original's, turned by the orientation)
    v     width of the coded image, 1..65535
    v     padded height - height, 0..1024
    v     padded width - width, 0..1024
    1     flags: bit 0 pad mode (0 = replicate (edge), 1 = zero),   [B]
          bits 1-3 orientation 0..7 (orientation.py),
          bit 4 post-filtered (1 = apply the codec's post-filter),
          bit 5 post-filter self-ensemble (1 = apply it as the mean over the
          8 orientations; only with bit 4),
          bit 6 Wiener-filtered (1 = the last stream holds the taps of a
          per-image Wiener filter, wiener_filter.py),
          bit 7 placed (1 = the two placement varints below are present)
    4     CRC32 of the quantised latent symbols                     [I]
    1     k = number of streams, 1..16                              [B]
    v+v   only with flag bit 7: padding above and left of the image,
          0..padded height - height and 0..padded width - width, not both 0
          (without the flag both are 0: all padding below and right of it)
    v*k   length of each stream in bytes, 0..2**32-1
    4     CRC32 of all the bytes above, magic included              [I]
          the k streams, concatenated; nothing may follow them

Format version 3 (2026-12-06) is version 2 with one more byte right after the flags:

    1     coarseness k, 0..15: y was quantised with the step r**k       [B]
          (entropy/coarseness.py); 0 is the weights' own step

The encoder writes version 3 only for k > 0, so that every stream at the weights' own
step stays byte for byte a version 2 stream, which decoders before version 3 read;
those decoders refuse version 3 ("unsupported bitstream format version 3") rather than
decode its symbols at the wrong step.

For a 500x500 photo coded by llic-elic-compact (two streams: z of under 128 bytes, y of
128 bytes to 16 KiB) this header is 32 bytes. Version 1 spent 61 on the same photo: it
also stored the model's registry name (which the fingerprint already pins down) and
fixed-width sizes and lengths; at 0.2-0.35 bpp those 29 bytes are 0.25-0.45% of the
file. Layout of format version 1 (fixed offsets, ``n`` = name length)::

    offset  size  field
    0       4     magic b"LLIC"
    4       1     format version = 1                          [B]
    5       1     n = length of the model name in bytes, 1..64 [B]
    6       n     model name, UTF-8
    6+n     8     fingerprint
    14+n    2+2   height, width of the original image, 1..65535 [HH]
    18+n    4+4   padded height, padded width, original..original+1024 [II]
    26+n    1     pad mode                                    [B]
    27+n    4     CRC32 of the quantised latent symbols       [I]
    31+n    1     k = number of streams, 1..16                [B]
    32+n    4k    length of each stream in bytes              [k*I]
    32+n+4k 4     CRC32 of all the bytes above, magic included [I]
    36+n+4k       the k streams, concatenated; nothing may follow them

Version 1 has no orientation field, no placement and no post-filter flag: its images
were coded as they are (orientation 0, padded below and right) and decode without a
post-filter. Decoders older than the post-filter flag (or its ensemble flag, 2026-12,
the Wiener flag, 2026-12-05, or the placement flag, 2026-12-05) refuse streams that set
it ("unknown header flags"). A header whose placement is (0, 0) leaves that flag clear
and is byte for byte what the decoders before it wrote.
In both versions the header CRC is checked before any field value is interpreted (only
the lengths needed to find the CRC are read first, and those are bounded), so a corrupted
header is reported as such, and nothing is ever sliced or allocated from a number that
has not been validated: the stream lengths must add up to exactly the bytes that follow
the header. The payloads carry no checksum of their own (a range coder has no redundancy
to check); the symbol CRC lets the decoder detect a corrupted payload after entropy
decoding.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Sequence

import numpy as np

from llic_jax.entropy.coarseness import MAX_COARSENESS

__all__ = [
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "MAGIC",
    "MAX_MODEL_NAME_BYTES",
    "MAX_PADDING",
    "MAX_SIDE",
    "MAX_STREAMS",
    "MAX_STREAM_BYTES",
    "PAD_REPLICATE",
    "PAD_ZERO",
    "BitstreamError",
    "Header",
    "length_field_bytes",
    "pack",
    "symbols_crc32",
    "unpack",
]

MAGIC = b"LLIC"
FORMAT_VERSION = 2  # what pack() writes unless told otherwise (3 for a coarseness)
FORMAT_VERSIONS = (1, 2, 3)  # what unpack() reads
MAX_MODEL_NAME_BYTES = 64
MAX_SIDE = 65535
# Padding to the model's multiple (64 for four stride-2 stages and a stride-4 hyperprior)
# never comes close to this; the bound only stops hostile headers claiming huge sizes.
MAX_PADDING = 1024
MAX_STREAMS = 16
MAX_STREAM_BYTES = 0xFFFFFFFF
PAD_REPLICATE = 0
PAD_ZERO = 1

_PREFIX = struct.Struct(">4sB")  # magic, version
_V1_FIXED = struct.Struct(">8sHHIIBIB")  # fingerprint .. number of streams
_V2_TAIL = struct.Struct(">BIB")  # flags, symbol crc, number of streams
_V3_TAIL = struct.Struct(">BBIB")  # flags, coarseness, symbol crc, number of streams
_FLAG_PAD_ZERO = 0x01
_ORIENTATION_SHIFT = 1
_FLAG_POST_FILTERED = 0x10
_FLAG_POST_FILTER_ENSEMBLE = 0x20
_FLAG_WIENER_FILTERED = 0x40
_FLAG_PLACED = 0x80
_U32 = struct.Struct(">I")
_FINGERPRINT_BYTES = 8
_VARINT_MAX_BYTES = 5  # enough for any value below 2**35, so for every 32-bit field
_MIN_SIZE = _PREFIX.size + _FINGERPRINT_BYTES + 4 + _V2_TAIL.size + 1 + _U32.size


class BitstreamError(ValueError):
    """A byte string is not a valid llic_jax bitstream (truncated, corrupt or foreign).

    Re-exported as ``llic_jax.BitstreamError``. The message is one short lowercase line
    suitable for a command-line error report.
    """


@dataclasses.dataclass(frozen=True)
class Header:
    """Everything a container stores besides the payload streams.

    Attributes:
        fingerprint: Exactly 8 bytes identifying the weights and coding tables used
            (the caller hashes them); a decoder compares it with its own.
        height: Height of the coded image, 1…65535: the original's, or its width if
            the orientation is odd.
        width: Width of the coded image, 1…65535.
        padded_height: Height after padding to the model's multiple, between ``height``
            and ``height + 1024``.
        padded_width: Width after padding, between ``width`` and ``width + 1024``.
        pad_mode: ``PAD_REPLICATE`` (0, edge replication) or ``PAD_ZERO`` (1).
        symbols_crc32: CRC32 of the quantised latent symbols (see :func:`symbols_crc32`).
        stream_lengths: Byte length of each payload stream, 1…16 of them. May be left
            empty when packing: :func:`pack` then fills in the lengths of the streams
            it is given. :func:`unpack` always returns it filled.
        orientation: Which of the eight orientations the image was coded in, 0…7
            (orientation.py); 0 = as it is. Version 1 can only store 0.
        post_filtered: 1 if the decoder must apply the post-filter trained for these
            weights (layers/post_filter.py) to the synthesis, else 0. Version 1 can
            only store 0.
        post_filter_ensemble: 1 if the decoder applies that post-filter as its
            self-ensemble (the mean of its outputs over the eight orientations,
            layers/post_filter.py), else 0; 1 needs ``post_filtered`` 1. Version 1
            can only store 0.
        wiener_filtered: 1 if the last stream holds the taps of a per-image Wiener
            filter the decoder applies last (wiener_filter.py), else 0. Version 1 can
            only store 0.
        pad_top: Rows of padding above the image, 0…``padded_height - height``; the
            rest of the padding lies below it. Version 1 can only store 0.
        pad_left: Columns of padding left of the image, 0…``padded_width - width``;
            the rest lies right of it. Version 1 can only store 0.
        coarseness: y's quantisation step is r**coarseness, 0…15
            (entropy/coarseness.py); 0, the weights' own step, is all versions 1 and
            2 can store.
        model_name: Registry name of the model, 1…64 bytes of UTF-8. Only format
            version 1 stores it (and requires it); version 2 leaves it None, since the
            fingerprint already identifies the weights.

    Raises:
        ValueError: On construction, if any field is out of range.
    """

    fingerprint: bytes
    height: int
    width: int
    padded_height: int
    padded_width: int
    pad_mode: int
    symbols_crc32: int
    stream_lengths: tuple[int, ...] = ()
    orientation: int = 0
    model_name: str | None = None
    post_filtered: int = 0
    post_filter_ensemble: int = 0
    wiener_filtered: int = 0
    pad_top: int = 0
    pad_left: int = 0
    coarseness: int = 0

    def __post_init__(self) -> None:
        problem = _header_problem(self, allow_no_streams=True)
        if problem is not None:
            raise ValueError(f"invalid container header: {problem}")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _header_problem(header: Header, allow_no_streams: bool) -> str | None:
    """Returns why ``header`` cannot be stored, or None if it can.

    Shared by ``Header`` (ValueError) and ``unpack`` (BitstreamError) so that a header
    that unpacks is exactly a header that packs.
    """
    if header.model_name is not None:
        if not isinstance(header.model_name, str):
            return "model name is not a string"
        try:
            name = header.model_name.encode("utf-8")
        except UnicodeEncodeError:
            return "model name is not valid utf-8"
        if not 1 <= len(name) <= MAX_MODEL_NAME_BYTES:
            return f"model name must be 1..{MAX_MODEL_NAME_BYTES} utf-8 bytes"
    if (
        not isinstance(header.fingerprint, bytes)
        or len(header.fingerprint) != _FINGERPRINT_BYTES
    ):
        return "fingerprint must be exactly 8 bytes"
    ints = (
        header.height,
        header.width,
        header.padded_height,
        header.padded_width,
        header.pad_mode,
        header.symbols_crc32,
        header.orientation,
        header.post_filtered,
        header.post_filter_ensemble,
        header.wiener_filtered,
        header.pad_top,
        header.pad_left,
        header.coarseness,
    )
    if not all(_is_int(v) for v in ints):
        return "sizes, placement, flags and crc must be integers"
    for name_, size in (("height", header.height), ("width", header.width)):
        if not 1 <= size <= MAX_SIDE:
            return f"{name_} {size} out of range 1..{MAX_SIDE}"
    for name_, padded, size in (
        ("padded height", header.padded_height, header.height),
        ("padded width", header.padded_width, header.width),
    ):
        if padded < size:
            return f"{name_} {padded} is smaller than the image ({size})"
        if padded > size + MAX_PADDING:
            return (
                f"{name_} {padded} exceeds the image ({size}) by more than {MAX_PADDING}"
            )
    for name_, offset, padded, size in (
        ("above", header.pad_top, header.padded_height, header.height),
        ("left of", header.pad_left, header.padded_width, header.width),
    ):
        if not 0 <= offset <= padded - size:
            return f"padding {name_} the image {offset} out of range 0..{padded - size}"
    if header.pad_mode not in (PAD_REPLICATE, PAD_ZERO):
        return f"unknown pad mode {header.pad_mode}"
    if not 0 <= header.orientation <= 7:
        return f"orientation {header.orientation} out of range 0..7"
    if header.post_filtered not in (0, 1):
        return f"post-filter flag {header.post_filtered} is not 0 or 1"
    if header.post_filter_ensemble not in (0, 1):
        return f"post-filter ensemble flag {header.post_filter_ensemble} is not 0 or 1"
    if header.post_filter_ensemble and not header.post_filtered:
        return "post-filter ensemble flag set without the post-filter flag"
    if header.wiener_filtered not in (0, 1):
        return f"wiener filter flag {header.wiener_filtered} is not 0 or 1"
    if not 0 <= header.coarseness <= MAX_COARSENESS:
        return f"coarseness {header.coarseness} out of range 0..{MAX_COARSENESS}"
    if not 0 <= header.symbols_crc32 <= 0xFFFFFFFF:
        return "symbol crc32 out of range"
    lengths = header.stream_lengths
    if not isinstance(lengths, tuple) or not all(_is_int(n) for n in lengths):
        return "stream lengths must be a tuple of integers"
    if not lengths and allow_no_streams:
        return None
    if not 1 <= len(lengths) <= MAX_STREAMS:
        return f"stream count {len(lengths)} out of range 1..{MAX_STREAMS}"
    if any(not 0 <= n <= MAX_STREAM_BYTES for n in lengths):
        return "stream length out of range"
    return None


def _varint(value: int) -> bytes:
    """Unsigned LEB128, shortest form."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_field_bytes(stream_length: int) -> int:
    """Bytes the header spends on a stream of `stream_length` bytes (its length field).

    What an encoder adds to a stream's own bytes when it weighs sending that stream.
    """
    return len(_varint(stream_length))


def _read_varint(data: memoryview, at: int) -> tuple[int, int]:
    """Reads a varint written by :func:`_varint` at ``at``; returns (value, next offset).

    Only the shortest form is accepted, so every header has exactly one encoding.
    """
    value = 0
    for i in range(_VARINT_MAX_BYTES):
        if at + i >= len(data):
            raise BitstreamError("bitstream too short for its header")
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise BitstreamError("malformed header (padded varint)")
            return value, at + i + 1
    raise BitstreamError("malformed header (varint too long)")


def _pack_v1(header: Header) -> bytes:
    name = header.model_name.encode("utf-8")
    lengths = header.stream_lengths
    return b"".join(
        [
            _PREFIX.pack(MAGIC, 1),
            bytes([len(name)]),
            name,
            _V1_FIXED.pack(
                header.fingerprint,
                header.height,
                header.width,
                header.padded_height,
                header.padded_width,
                header.pad_mode,
                header.symbols_crc32,
                len(lengths),
            ),
            struct.pack(f">{len(lengths)}I", *lengths),
        ]
    )


def _pack_v2(header: Header, version: int = 2) -> bytes:
    sizes = (
        header.height,
        header.width,
        header.padded_height - header.height,
        header.padded_width - header.width,
    )
    lengths = header.stream_lengths
    placed = bool(header.pad_top or header.pad_left)
    flags = (
        header.pad_mode * _FLAG_PAD_ZERO
        | header.orientation << _ORIENTATION_SHIFT
        | header.post_filtered * _FLAG_POST_FILTERED
        | header.post_filter_ensemble * _FLAG_POST_FILTER_ENSEMBLE
        | header.wiener_filtered * _FLAG_WIENER_FILTERED
        | placed * _FLAG_PLACED
    )
    placement = (header.pad_top, header.pad_left) if placed else ()
    tail = (
        _V2_TAIL.pack(flags, header.symbols_crc32, len(lengths))
        if version == 2
        else _V3_TAIL.pack(flags, header.coarseness, header.symbols_crc32, len(lengths))
    )
    return b"".join(
        [
            _PREFIX.pack(MAGIC, version),
            header.fingerprint,
            *map(_varint, sizes),
            tail,
            *map(_varint, placement),
            *map(_varint, lengths),
        ]
    )


def pack(header: Header, streams: Sequence[bytes], version: int | None = None) -> bytes:
    """Serialises a header and its payload streams into one container.

    Args:
        header: The header. Its ``stream_lengths`` must either be empty (filled in from
            ``streams``) or equal the lengths of ``streams``.
        streams: 1…16 byte strings (range-coder outputs), in the order the decoder reads
            them.
        version: Format version to write (see the module docstring); None (the
            default) writes 2, or 3 if the header has a coarseness. 2 and 3 store no
            model name and need ``header.model_name`` None; only 3 stores a coarseness;
            1 needs the name set and can only store orientation 0, placement (0, 0), no
            post-filter or Wiener flag and coarseness 0.

    Returns:
        The container bytes.

    Raises:
        ValueError: If the header is invalid or does not suit the version, the streams
            are not bytes, their number is out of range or their lengths disagree with
            ``header.stream_lengths``.
    """
    if version is None:
        version = 3 if header.coarseness else FORMAT_VERSION
    if version not in FORMAT_VERSIONS:
        raise ValueError(f"unknown container format version {version!r}")
    if version < 3 and header.coarseness:
        raise ValueError(f"format version {version} cannot store a coarseness")
    if version == 1 and header.model_name is None:
        raise ValueError("format version 1 needs the model name")
    if version == 1 and header.orientation != 0:
        raise ValueError("format version 1 cannot store an orientation")
    if version == 1 and header.post_filtered:  # the ensemble flag needs this one
        raise ValueError("format version 1 cannot store the post-filter flag")
    if version == 1 and header.wiener_filtered:
        raise ValueError("format version 1 cannot store the wiener filter flag")
    if version == 1 and (header.pad_top or header.pad_left):
        raise ValueError("format version 1 cannot store a placement")
    if version > 1 and header.model_name is not None:
        raise ValueError(f"format version {version} stores no model name: leave it None")
    streams = list(streams)
    if not all(isinstance(s, (bytes, bytearray, memoryview)) for s in streams):
        raise ValueError("streams must be bytes")
    lengths = tuple(len(s) for s in streams)
    if header.stream_lengths and header.stream_lengths != lengths:
        raise ValueError(
            f"header stream lengths {header.stream_lengths} do not match the streams "
            f"{lengths}"
        )
    header = dataclasses.replace(header, stream_lengths=lengths)
    problem = _header_problem(header, allow_no_streams=False)
    if problem is not None:
        raise ValueError(f"invalid container header: {problem}")
    head = _pack_v1(header) if version == 1 else _pack_v2(header, version)
    return b"".join([head, _U32.pack(zlib.crc32(head)), *map(bytes, streams)])


def _parse_v1(data: memoryview) -> tuple[dict, int]:
    """Fields of a version 1 header and the offset of its CRC (checked here)."""
    name_len = data[_PREFIX.size]
    if not 1 <= name_len <= MAX_MODEL_NAME_BYTES:
        raise BitstreamError(f"bad model name length {name_len}")
    fixed_at = _PREFIX.size + 1 + name_len
    count_at = fixed_at + _V1_FIXED.size - 1
    if len(data) <= count_at:
        raise BitstreamError("bitstream too short for its header")
    n_streams = data[count_at]
    if not 1 <= n_streams <= MAX_STREAMS:
        raise BitstreamError(f"stream count {n_streams} out of range 1..{MAX_STREAMS}")
    crc_at = count_at + 1 + 4 * n_streams
    if len(data) < crc_at + _U32.size:
        raise BitstreamError("bitstream too short for its header")
    _check_crc(data, crc_at)
    try:
        name = bytes(data[_PREFIX.size + 1 : fixed_at]).decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError("model name is not valid utf-8") from None
    fingerprint, height, width, padded_h, padded_w, pad_mode, sym_crc, _ = (
        _V1_FIXED.unpack_from(data, fixed_at)
    )
    fields = dict(
        model_name=name,
        fingerprint=fingerprint,
        height=height,
        width=width,
        padded_height=padded_h,
        padded_width=padded_w,
        pad_mode=pad_mode,
        symbols_crc32=sym_crc,
        stream_lengths=struct.unpack_from(f">{n_streams}I", data, count_at + 1),
    )
    return fields, crc_at


def _parse_v2(data: memoryview, version: int = 2) -> tuple[dict, int]:
    """Fields of a version 2 or 3 header and the offset of its CRC (checked here)."""
    at = _PREFIX.size + _FINGERPRINT_BYTES
    sizes = []
    for _ in range(4):
        value, at = _read_varint(data, at)
        sizes.append(value)
    tail = _V2_TAIL if version == 2 else _V3_TAIL
    if len(data) < at + tail.size:
        raise BitstreamError("bitstream too short for its header")
    if version == 2:
        (flags, sym_crc, n_streams), coarseness = tail.unpack_from(data, at), 0
    else:
        flags, coarseness, sym_crc, n_streams = tail.unpack_from(data, at)
    at += tail.size
    if not 1 <= n_streams <= MAX_STREAMS:
        raise BitstreamError(f"stream count {n_streams} out of range 1..{MAX_STREAMS}")
    placement = [0, 0]
    if flags & _FLAG_PLACED:
        for i in range(2):
            placement[i], at = _read_varint(data, at)
    lengths = []
    for _ in range(n_streams):
        value, at = _read_varint(data, at)
        lengths.append(value)
    if len(data) < at + _U32.size:
        raise BitstreamError("bitstream too short for its header")
    _check_crc(data, at)
    if flags & _FLAG_PLACED and placement == [0, 0]:  # one encoding per header
        raise BitstreamError("malformed header (placement flag with no offset)")
    height, width, pad_h, pad_w = sizes
    fields = dict(
        fingerprint=bytes(data[_PREFIX.size : _PREFIX.size + _FINGERPRINT_BYTES]),
        height=height,
        width=width,
        padded_height=height + pad_h,
        padded_width=width + pad_w,
        pad_mode=flags & _FLAG_PAD_ZERO,
        orientation=(flags >> _ORIENTATION_SHIFT) & 7,
        post_filtered=int(bool(flags & _FLAG_POST_FILTERED)),
        post_filter_ensemble=int(bool(flags & _FLAG_POST_FILTER_ENSEMBLE)),
        wiener_filtered=int(bool(flags & _FLAG_WIENER_FILTERED)),
        pad_top=placement[0],
        pad_left=placement[1],
        coarseness=coarseness,
        symbols_crc32=sym_crc,
        stream_lengths=tuple(lengths),
    )
    return fields, at


def _check_crc(data: memoryview, crc_at: int) -> None:
    # Checked before any field is trusted, so a flipped bit anywhere in the header is
    # reported as corruption rather than as some odd field value.
    (stored_crc,) = _U32.unpack_from(data, crc_at)
    if zlib.crc32(data[:crc_at]) != stored_crc:
        raise BitstreamError("header checksum mismatch (corrupt bitstream)")


def unpack(blob: bytes) -> tuple[Header, list[bytes]]:
    """Parses and fully validates a container of any supported format version.

    Args:
        blob: The container bytes, e.g. the whole content of a ``.llic`` file.

    Returns:
        The header (with ``stream_lengths`` filled; ``model_name`` None for version 2)
        and the list of payload streams.

    Raises:
        BitstreamError: For any malformed input, with a one-line reason. No other
            exception type escapes (except for non-bytes-like input, a TypeError), and
            nothing is allocated from a header number before it has been validated.
    """
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(blob).__name__}")
    data = memoryview(blob).cast("B")
    if len(data) < _MIN_SIZE:
        raise BitstreamError(f"bitstream too short ({len(data)} bytes)")
    magic, version = _PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError("not an llic bitstream (bad magic)")
    if version not in FORMAT_VERSIONS:
        raise BitstreamError(f"unsupported bitstream format version {version}")
    fields, crc_at = _parse_v1(data) if version == 1 else _parse_v2(data, version)
    payload_at = crc_at + _U32.size
    # object.__new__ skips __post_init__ so the shared check can raise our own type.
    header = object.__new__(Header)
    object.__setattr__(header, "model_name", None)
    object.__setattr__(header, "orientation", 0)
    object.__setattr__(header, "post_filtered", 0)
    object.__setattr__(header, "post_filter_ensemble", 0)
    object.__setattr__(header, "wiener_filtered", 0)
    object.__setattr__(header, "pad_top", 0)
    object.__setattr__(header, "pad_left", 0)
    object.__setattr__(header, "coarseness", 0)
    for key, value in fields.items():
        object.__setattr__(header, key, value)
    problem = _header_problem(header, allow_no_streams=False)
    if problem is not None:
        raise BitstreamError(problem)
    available = len(data) - payload_at
    total = sum(header.stream_lengths)
    if total > available:
        raise BitstreamError(
            f"bitstream truncated: streams need {total} bytes, {available} present"
        )
    if total < available:
        raise BitstreamError(
            f"trailing garbage: {available - total} bytes after the streams"
        )
    streams = []
    at = payload_at
    for n in header.stream_lengths:
        streams.append(bytes(data[at : at + n]))
        at += n
    return header, streams


def symbols_crc32(arrays: Sequence[np.ndarray]) -> int:
    """CRC32 of integer symbol arrays, as stored in :attr:`Header.symbols_crc32`.

    Each array is taken as int32 little-endian in C order and the CRCs are chained
    (``zlib.crc32(bytes, previous)``), so the result depends on the order, values and
    sizes of the arrays but not on how they are shaped.

    Args:
        arrays: Integer arrays (any shape) whose values fit in int32.

    Returns:
        The CRC32 as an unsigned integer in [0, 2**32).

    Raises:
        ValueError: If an array is not integer-typed or has values outside int32.
    """
    crc = 0
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind not in "iu":
            raise ValueError(f"symbols must be integers, got dtype {a.dtype}")
        if a.dtype.itemsize > 4 or a.dtype == np.uint32:
            info = np.iinfo(np.int32)
            if a.size and (a.min() < info.min or a.max() > info.max):
                raise ValueError("symbol values do not fit in int32")
        crc = zlib.crc32(np.ascontiguousarray(a, dtype="<i4").data, crc)
    return crc
