"""Range coding on the host with tensorflow-compression's C++ ops.

This is the only module of llic_jax that touches TensorFlow. TensorFlow and the ops
package (``tensorflow_compression_ops``, falling back to the full
``tensorflow_compression``) are imported lazily on first use, with TF's C++ logging
silenced (level 3 while TF loads) and TF's view of GPUs hidden, so that
``import llic_jax`` never loads TF and TF never claims an accelerator that JAX is using.

Lookup tables
-------------
A lookup table is a 2-D int32 array with one row per distribution, in tfc's row format
``[±precision, 0, c1, …, 2**precision]`` (tfc ``create_range_encoder``: "each CDF is
prefixed by its precision"; a negative precision turns on escape coding for the row). In
an escape row the last bin is the escape bin (tail mass) and the values ``0 … n-2`` of an
``n``-bin row are regular symbols, as in tfc's ``LocationScaleIndexedEntropyModel``.

Rows of different length are padded at the end by repeating ``2**precision``. This is
what tfc's kernel expects (``range_coder_kernels.cc``, ``ScanCDF``/``IndexCDFMatrix``): a
row's CDF ends at the *first* entry equal to ``1 << |precision|``, the scanner then skips
any further entries equal to that value, and the row is rejected ("CDF must end with 1 <<
precision") unless that skipping reaches exactly the end of the row. Padding with 0 or -1
is rejected, which we confirmed with tensorflow-compression-ops 2.17.0. The same rule
means a CDF may not contain a zero-width last bin (its repeated final value would be
taken for padding), so :func:`build_lookup` requires strictly increasing CDFs, which
:func:`quantized_cdf` always produces (tfc's ``PmfToQuantizedCdf`` gives every bin at
least one count).

Escape coding, and why it is not tfc's
--------------------------------------
tfc's own overflow decoder (``OverflowDecode``) reads the Elias-gamma prefix of an escaped
value in a loop that stops at the first 1 bit. The range decoder feeds implicit zero
bytes after the end of its input, so for some inputs that loop never ends: with the row
``[-16, 0, 32768, 65536]`` the one-byte blobs ``0x7f`` and ``0x80`` make
``entropy_decode_index`` spin forever inside C++ (measured with tfc-ops 2.17.0), and no
Python-level timeout can stop it. A truncated or corrupted file could therefore hang the
decoder. We never hand tfc a negative precision: escape rows are passed to tfc with a
positive precision, so the escape bin is an ordinary symbol, and the escaped value is
coded after the regular symbols of the same call with a few extra rows appended to the
table:

* ``u`` = ``2·(v − m)`` for ``v ≥ m`` or ``−2·v − 1`` for ``v < 0`` (``m`` = number of
  regular symbols of the row), ``g = u + 1`` and ``nb = ⌊log2 g⌋ ∈ [0, 30]``;
* ``nb`` is coded with a fixed, roughly geometric 31-bin row (about ``nb + 1`` bits);
* the ``nb`` low bits of ``g`` are coded with uniform rows, 4 bits per symbol.

That costs about ``2·nb + 2`` bits per escape, like tfc's Elias-gamma code plus sign, and
every decode call does a bounded amount of work whatever the bytes are: tfc's range
decoder always returns a bin of the row it was given (its interval invariant holds for
any input), so garbage decodes to garbage values (or to :class:`BitstreamError` where the
values are impossible) but can neither hang nor crash. Escaped values must lie in
``[−ESCAPE_LIMIT, m + ESCAPE_LIMIT)``; rows without escape accept only ``[0, n)``.

Streams produced here are not bit-compatible with tfc's Keras entropy models, which is by
design (see the project notes on CompressAI/TFC differences).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "ESCAPE_LIMIT",
    "RangeDecoder",
    "RangeEncoder",
    "build_lookup",
    "num_regular_symbols",
    "quantized_cdf",
]

ESCAPE_LIMIT = 2**29
"""Escaped values ``v`` of a row with ``m`` regular symbols must be in
``[-ESCAPE_LIMIT, m + ESCAPE_LIMIT)``; this keeps ``nb`` ≤ 30 and the values in int32."""

_NB_BINS = 31  # nb = floor(log2(u + 1)) in 0..30 for u < 2**30
_CHUNK_BITS = 4
_NUM_HELPER_ROWS = 1 + _CHUNK_BITS  # the nb row, then uniform rows of 1..4 bits


@functools.cache
def _tf() -> tuple[Any, Any]:
    """Imports TensorFlow and the range-coding ops once, on first use."""
    # TF's C++ logger reads TF_CPP_MIN_LOG_LEVEL once, at its first message, which
    # `import tensorflow` always emits. `import jax` has already set the variable to "1"
    # with setdefault, so "unset" cannot be told from a user's choice; raise it to 3
    # while TF loads and restore it afterwards for everyone else.
    previous = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        import tensorflow as tf

        # JAX owns the accelerators; the ops here are CPU-only anyway. RuntimeError means
        # TF's devices were already initialised by someone else.
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.set_visible_devices([], "GPU")
        try:
            import tensorflow_compression_ops as tfc
        except ImportError:
            import tensorflow_compression as tfc
    finally:
        if previous is None:
            del os.environ["TF_CPP_MIN_LOG_LEVEL"]
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = previous
    return tf, tfc


def _nb_cdf() -> np.ndarray:
    """CDF (precision 16) of the bit-length row: P(nb) ≈ 2**-(nb+1), at least 2**-16."""
    counts = np.ones(_NB_BINS, np.int64)
    counts[:16] = 2 ** (15 - np.arange(16))
    counts[0] -= counts.sum() - 2**16  # the remaining 15 bins take one count each
    return np.concatenate([[0], np.cumsum(counts)])


def quantized_cdf(pmf: np.ndarray, precision: int = 16) -> np.ndarray:
    """Quantises a probability mass function to an integer CDF with tfc's op.

    Uses ``tfc.pmf_to_quantized_cdf``, which gives every bin at least one count and then
    removes or adds counts greedily where that costs the least rate (tfc
    ``pmf_to_cdf_kernels.cc``); the result is strictly increasing.

    Args:
        pmf: 1-D probabilities, at least 2 and at most ``2**precision`` of them. For an
            escape row the caller appends the tail mass (overflow bin) as the last entry.
            Normalised to sum 1 here: tfc's op does not normalise, and a badly scaled pmf
            makes its greedy loop run for a very long time.
        precision: Bits of the CDF, 1…16.

    Returns:
        int32 array of ``len(pmf) + 1`` values from 0 to ``2**precision``.

    Raises:
        ValueError: For a pmf of the wrong shape or size (more bins than ``2**precision``
            would make tfc's kernel abort the process), or with negative, non-finite or
            all-zero entries.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    if not 1 <= precision <= 16:
        raise ValueError(f"precision must be in 1..16, got {precision}")
    if pmf.ndim != 1 or not 2 <= pmf.size <= 2**precision:
        raise ValueError(
            f"pmf must be 1-D with 2..{2**precision} entries, got shape {pmf.shape}"
        )
    if not np.isfinite(pmf).all() or (pmf < 0).any():
        raise ValueError("pmf has negative or non-finite entries")
    total = pmf.sum()
    if total <= 0:
        raise ValueError("pmf sums to zero")
    _, tfc = _tf()
    cdf = tfc.pmf_to_quantized_cdf((pmf / total).astype(np.float32), precision=precision)
    return np.asarray(cdf, dtype=np.int32)


def build_lookup(
    cdfs: Sequence[np.ndarray], precision: int = 16, overflow: bool = True
) -> np.ndarray:
    """Stacks CDFs into a 2-D lookup table in tfc's row format.

    Args:
        cdfs: One integer CDF per distribution (e.g. from :func:`quantized_cdf`), each
            strictly increasing from 0 to ``2**precision``; lengths may differ.
        precision: Precision of all the CDFs, 1…16.
        overflow: Whether the rows use escape coding: the last bin of each CDF is then
            the escape bin (stored as a negative precision, tfc's convention), and each
            CDF needs at least 2 bins.

    Returns:
        int32 array ``[len(cdfs), 1 + max_len]``: row ``i`` is ``[±precision, *cdfs[i]]``
        padded at the end with ``2**precision`` (the padding tfc's kernel accepts; see the
        module docstring).

    Raises:
        ValueError: If there are no CDFs or one is malformed.
    """
    if not 1 <= precision <= 16:
        raise ValueError(f"precision must be in 1..16, got {precision}")
    rows = [np.asarray(c) for c in cdfs]
    if not rows:
        raise ValueError("no cdfs given")
    width = 1 + max(r.size for r in rows)
    top = 1 << precision
    table = np.full((len(rows), width), top, np.int32)
    table[:, 0] = -precision if overflow else precision
    for i, cdf in enumerate(rows):
        if cdf.ndim != 1 or cdf.dtype.kind not in "iu":
            raise ValueError(f"cdf {i} must be a 1-D integer array")
        if cdf.size < 2:
            raise ValueError(f"cdf {i} has fewer than 2 entries")
        if cdf[0] != 0 or cdf[-1] != top or (np.diff(cdf) <= 0).any():
            raise ValueError(
                f"cdf {i} must increase strictly from 0 to 2**precision = {top}"
            )
        table[i, 1 : 1 + cdf.size] = cdf
    _parse_lookup(table)  # e.g. the 2-bin minimum of escape rows
    return table


def num_regular_symbols(lookup: np.ndarray) -> np.ndarray:
    """Number of regular (directly coded) symbols of each row of a lookup table.

    Args:
        lookup: A table as made by :func:`build_lookup`.

    Returns:
        int32 array ``[rows]``: the bin count, minus one for escape rows (whose last bin
        is the escape bin). Values ``0 … n-1`` of a row are coded directly; in an escape
        row anything else (within :data:`ESCAPE_LIMIT`) is escaped.

    Raises:
        ValueError: If the table is malformed.
    """
    precision, bins = _parse_lookup(lookup)
    return np.where(precision < 0, bins - 1, bins).astype(np.int32)


def _parse_lookup(lookup: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validates a lookup table; returns per-row signed precision and bin count."""
    table = np.asarray(lookup)
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 3:
        raise ValueError(f"lookup must be 2-D with >= 1 row, >= 3 columns: {table.shape}")
    if table.dtype.kind not in "iu":
        raise ValueError(f"lookup must be an integer array, got {table.dtype}")
    table = table.astype(np.int64)
    precision = table[:, 0]
    magnitude = np.abs(precision)
    if ((magnitude < 1) | (magnitude > 16)).any():
        raise ValueError("lookup row precision must be ±1..±16")
    cdf = table[:, 1:]
    top = (1 << magnitude)[:, None]
    if (cdf[:, 0] != 0).any():
        raise ValueError("lookup row CDF must start with 0")
    is_top = cdf == top
    if not is_top.any(axis=1).all():
        raise ValueError("lookup row CDF must reach 2**precision")
    bins = is_top.argmax(axis=1)  # the first 2**precision ends the CDF
    cols = np.arange(cdf.shape[1])
    if (~is_top & (cols > bins[:, None])).any():
        raise ValueError("lookup rows must be padded with 2**precision")
    rising = np.diff(cdf, axis=1) > 0
    if (~rising & (cols[:-1] < bins[:, None])).any():
        raise ValueError("lookup row CDF must be strictly increasing")
    if ((precision < 0) & (bins < 2)).any():
        raise ValueError("escape rows need at least one regular bin besides the escape")
    return precision, bins


class _Table:
    """A validated lookup table, its per-row bounds and tfc's copy with helper rows."""

    def __init__(self, lookup: np.ndarray) -> None:
        precision, bins = _parse_lookup(lookup)
        rows, width = np.shape(lookup)
        escape = precision < 0
        self.rows = rows
        self.regular = np.where(escape, bins - 1, bins).astype(np.uint32)
        # -1 never matches a decoded bin, so rows without escape skip the escape path.
        self.escape_bin = np.where(escape, bins - 1, -1).astype(np.int32)
        self.nb_row = rows
        self.uniform_row = rows + 1  # + (bits - 1)

        helper_width = 1 + _NB_BINS + 1
        internal = np.empty((rows + _NUM_HELPER_ROWS, max(width, helper_width)), np.int32)
        magnitude = np.abs(precision)
        internal[:rows] = (1 << magnitude)[:, None]
        internal[:rows, :width] = lookup
        internal[:rows, 0] = magnitude  # tfc's own overflow decoder can hang; see top
        internal[rows] = 1 << 16
        internal[rows, 0] = 16
        internal[rows, 1 : 2 + _NB_BINS] = _nb_cdf()
        for bits in range(1, _CHUNK_BITS + 1):
            row = internal[rows + bits]
            row[:] = 1 << bits
            row[0] = bits
            row[1 : 2 + (1 << bits)] = np.arange((1 << bits) + 1)
        tf, _ = _tf()
        self.tf_lookup = tf.constant(internal)

    def check_index(self, index: np.ndarray) -> None:
        if index.size and (index.min() < 0 or index.max() >= self.rows):
            raise ValueError(f"index out of range [0, {self.rows})")

    def chunks(self, nb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Layout of the low bits of escaped values: (owner, shift, row) per chunk."""
        count = (nb + _CHUNK_BITS - 1) // _CHUNK_BITS
        owner = np.repeat(np.arange(nb.size), count)
        first = np.repeat(np.cumsum(count) - count, count)
        shift = _CHUNK_BITS * (np.arange(owner.size) - first)
        bits = np.minimum(_CHUNK_BITS, nb[owner] - shift)
        return owner, shift, (self.uniform_row - 1 + bits).astype(np.int32)


def _as_int32(array: np.ndarray, name: str) -> np.ndarray:
    """Flat contiguous int32 view or copy of an integer array."""
    array = np.asarray(array)
    if array.dtype != np.int32:
        if array.dtype.kind not in "iu":
            raise ValueError(f"{name} must be an integer array, got {array.dtype}")
        if array.size and (array.min() < -(2**31) or array.max() >= 2**31):
            raise ValueError(f"{name} values do not fit in int32")
        array = array.astype(np.int32)
    return np.ascontiguousarray(array).reshape(-1)


def _bitstream_error(message: str) -> Exception:
    # Imported here, not at the top, so the entropy and coding packages can import each
    # other's modules without an import cycle.
    from llic_jax.coding.container import BitstreamError

    return BitstreamError(message)


class RangeEncoder:
    """Encodes symbols into one range-coded stream, in as many calls as needed.

    Example::

        enc = RangeEncoder(lookup)
        enc.encode(index_z, symbols_z)   # e.g. the hyper-latent
        enc.encode(index_y, symbols_y)   # then each slice
        blob = enc.finish()

    Args:
        lookup: A lookup table from :func:`build_lookup`.

    Raises:
        ValueError: If the table is malformed.
    """

    def __init__(self, lookup: np.ndarray) -> None:
        self._table = _Table(lookup)
        self._tf, self._tfc = _tf()
        self._handle = self._tfc.create_range_encoder([], self._table.tf_lookup)
        self._done = False

    def encode(self, index: np.ndarray, values: np.ndarray) -> None:
        """Appends symbols to the stream (tfc ``entropy_encode_index``, chained).

        Args:
            index: Integer array: the lookup row of each symbol.
            values: Integer array of the same shape, offset so that 0 is the first bin of
                its row. In escape rows, values below 0 or at/above the number of regular
                symbols are escaped (they must be within :data:`ESCAPE_LIMIT`).

        Raises:
            ValueError: On mismatched shapes, an index outside the table, or a value that
                its row cannot code.
            RuntimeError: If the encoder is already finished.
        """
        if self._done:
            raise RuntimeError("RangeEncoder.encode() called after finish()")
        if np.shape(index) != np.shape(values):
            raise ValueError(
                f"index shape {np.shape(index)} differs from values {np.shape(values)}"
            )
        idx = _as_int32(index, "index")
        val = _as_int32(values, "values")
        if not idx.size:
            return
        table = self._table
        table.check_index(idx)
        regular = table.regular[idx]
        # One unsigned compare catches both v < 0 and v >= regular.
        escaped = val.view(np.uint32) >= regular
        if escaped.any():
            idx, val = self._with_escapes(idx, val, regular, escaped)
        try:
            self._handle = self._tfc.entropy_encode_index(self._handle, idx, val)
        except self._tf.errors.OpError as e:  # validated above, so a bug if ever hit
            raise ValueError(f"range encoder rejected its input: {e}") from None

    def _with_escapes(
        self, idx: np.ndarray, val: np.ndarray, regular: np.ndarray, escaped: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Replaces escaped values by the escape bin and appends their payload."""
        table = self._table
        where = np.flatnonzero(escaped)
        rows = idx[where]
        if (table.escape_bin[rows] < 0).any():
            bad = where[table.escape_bin[rows] < 0][0]
            raise ValueError(
                f"value {val[bad]} out of range [0, {regular[bad]}) for lookup row "
                f"{idx[bad]}, which has no escape bin"
            )
        v = val[where].astype(np.int64)
        m = regular[where].astype(np.int64)
        if (v < -ESCAPE_LIMIT).any() or (v >= m + ESCAPE_LIMIT).any():
            raise ValueError(
                f"escaped values must be within ±{ESCAPE_LIMIT} of their row"
            )
        u = np.where(v >= m, 2 * (v - m), -2 * v - 1)
        g = u + 1
        nb = np.frexp(g.astype(np.float64))[1].astype(np.int64) - 1  # exact floor(log2)
        low = g - (np.int64(1) << nb)
        owner, shift, chunk_rows = table.chunks(nb)
        chunk_bits = chunk_rows - (table.uniform_row - 1)
        chunk_vals = (low[owner] >> shift) & ((np.int64(1) << chunk_bits) - 1)
        main = val.copy()
        main[where] = table.escape_bin[rows]
        idx = np.concatenate(
            [idx, np.full(where.size, table.nb_row, np.int32), chunk_rows]
        )
        val = np.concatenate([main, nb.astype(np.int32), chunk_vals.astype(np.int32)])
        return idx, val

    def finish(self) -> bytes:
        """Ends the stream (tfc ``entropy_encode_finalize``) and returns its bytes."""
        if self._done:
            raise RuntimeError("RangeEncoder.finish() called twice")
        self._done = True
        return bytes(self._tfc.entropy_encode_finalize(self._handle).numpy())


class RangeDecoder:
    """Decodes a stream made by :class:`RangeEncoder`, call by call.

    ``decode`` must be called with the same index arrays, in the same order and the same
    chunks, as ``encode`` was. Any byte string is accepted: corrupt input yields wrong
    values or :class:`~llic_jax.coding.container.BitstreamError`, never a crash or hang.

    Args:
        blob: The stream bytes.
        lookup: The lookup table used for encoding.

    Raises:
        ValueError: If the table is malformed.
        TypeError: If ``blob`` is not bytes-like.
    """

    def __init__(self, blob: bytes, lookup: np.ndarray) -> None:
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"blob must be bytes, got {type(blob).__name__}")
        self._table = _Table(lookup)
        self._tf, self._tfc = _tf()
        try:
            self._handle = self._tfc.create_range_decoder(
                self._tf.constant(bytes(blob)), self._table.tf_lookup
            )
        except self._tf.errors.OpError as e:
            raise _bitstream_error(f"range decoder rejected the stream: {e}") from None
        self._done = False

    def _run(self, idx: np.ndarray) -> np.ndarray:
        try:
            self._handle, out = self._tfc.entropy_decode_index(
                self._handle, idx, idx.shape, self._tf.int32
            )
        except self._tf.errors.OpError as e:
            raise _bitstream_error(f"range decoding failed: {e}") from None
        return out.numpy()

    def decode(self, index: np.ndarray) -> np.ndarray:
        """Decodes the next ``index.size`` symbols (tfc ``entropy_decode_index``).

        Args:
            index: Integer array: the lookup row of each symbol, as given to ``encode``.

        Returns:
            int32 array shaped like ``index``: the values given to ``encode`` (escaped
            ones restored) if the stream is intact.

        Raises:
            ValueError: If an index is outside the table.
            BitstreamError: If the stream is detectably corrupt.
            RuntimeError: If the decoder is already finished.
        """
        if self._done:
            raise RuntimeError("RangeDecoder.decode() called after finish()")
        shape = np.shape(index)
        idx = _as_int32(index, "index")
        if not idx.size:
            return np.zeros(shape, np.int32)
        table = self._table
        table.check_index(idx)
        out = self._run(idx)
        escaped = out == table.escape_bin[idx]
        if escaped.any():
            out = np.array(out)  # the tensor's buffer may be read-only
            where = np.flatnonzero(escaped)
            nb = self._run(np.full(where.size, table.nb_row, np.int32)).astype(np.int64)
            owner, shift, chunk_rows = table.chunks(nb)
            chunks = self._run(chunk_rows).astype(np.int64) << shift
            low = np.zeros(where.size, np.int64)
            np.add.at(low, owner, chunks)
            g = (np.int64(1) << nb) + low
            if (g > 2 * ESCAPE_LIMIT).any():
                raise _bitstream_error("corrupt range-coded stream (escape out of range)")
            u = g - 1
            m = table.regular[idx[where]].astype(np.int64)
            out[where] = np.where(u % 2 == 0, m + u // 2, -(u + 1) // 2)
        return out.reshape(shape)

    def finish(self) -> bool:
        """Ends decoding; returns tfc's weak end-of-stream check.

        ``False`` proves the stream was not decoded as encoded (e.g. bytes left over);
        ``True`` does not prove it was (tfc ``entropy_decode_finalize`` docs). Use a CRC
        of the decoded symbols for a real check.
        """
        if self._done:
            raise RuntimeError("RangeDecoder.finish() called twice")
        self._done = True
        try:
            return bool(self._tfc.entropy_decode_finalize(self._handle).numpy())
        except self._tf.errors.OpError:
            return False
