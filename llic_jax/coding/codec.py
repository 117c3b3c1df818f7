"""compress() / decompress(): images ↔ bitstreams through a model's stepwise latent codec.

Encoder and decoder call the same jitted functions (one set per model, cached) for
every quantity that decides a symbol: `hyper_synthesis`, `step_parameters` and
`step_update` (models/base.py). The hyper-latent `z` is one range-coded stream under the
factorized prior's tables (one row per channel); all coding steps of `y` are chained into
a second stream under the Gaussian scale tables. The container (container.py) records
a fingerprint of the weights and tables (which identifies the model too), the coded
size, the padding, the orientation and whether the decoder applies the post-filter,
and a CRC32 of every quantised symbol; the
decoder recomputes that CRC before it synthesises, so latents the encoder did not send
(a corrupt stream, other weights, or floats that differ on another device) raise
`BitstreamError` instead of returning a wrong image.

Padding: the image is padded by edge replication (`pad_mode` 0) to a multiple of
`model.pad_multiple`, centred in that canvas unless the caller places it elsewhere
(placement.py: centred costs less than the top-left corner); the header records where,
and the decoder crops the original H×W back from there.

Post-filter (optional, layers/post_filter.py): given one trained for these weights, the
encoder filters its padded float reconstruction, keeps the filtered one when it is
closer to the image (MSE of the 8-bit result), and sets the header's flag; a decoder
applies the filter exactly when the flag is set. Asked to, the encoder also tries the
filter's self-ensemble (its mean over the eight orientations, eight filter passes) and
keeps whichever of the three images is closest, flagging the ensemble in the header so
the decoder computes the same one. The symbols, and so the rate, do not change.

Wiener filter (optional, wiener_filter.py): given the λ of its RD cost, the encoder then
fits a per-image least-squares filter to whichever image won, and sends its taps as a
third stream (and the header's flag) when they lower ``bits / pixels + λ·MSE(0–255)``
of the 8-bit result; the decoder applies it last.

Coarseness (optional, entropy/coarseness.py): at k > 0 the encoder quantises y with the
step r**k under scale-table indexes lowered by k, for a lower rate from the same weights;
the header (format version 3) records k. Encoder and decoder dequantise the symbols with
the same float32 product before the jitted `step_update`.
"""

import collections
import dataclasses
import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.coding import container
from llic_jax.coding.container import BitstreamError
from llic_jax.coding.latent_refinement import Refinement, refine_latents
from llic_jax.coding.orientation import orient, unorient
from llic_jax.coding.phase_times import PhaseTimes, phase
from llic_jax.coding.placement import centred_placement
from llic_jax.coding.wiener_filter import (
    apply_wiener_filter,
    decode_wiener_filter,
    encode_wiener_filter,
    fit_wiener_filter,
)
from llic_jax.entropy import range_coder
from llic_jax.entropy.coarseness import check_coarseness, coarser_index, latent_step
from llic_jax.entropy.gaussian import symbol_bits
from llic_jax.post_filter_weights import LoadedPostFilter

__all__ = [
    "Encoded",
    "compress",
    "crop_image",
    "decompress",
    "encode",
    "pad_image",
    "to_uint8",
]

PAD_REPLICATE = 0
MAX_PIXELS = 1 << 27  # 134 M pixels: refuse headers that would allocate more


@dataclasses.dataclass(frozen=True)
class Encoded:
    """What the encoder knows: the stream and the reconstruction the decoder will give."""

    blob: bytes
    reconstruction: np.ndarray  # uint8 [H, W, 3]
    symbols: list[np.ndarray]  # z, then y per coding step (int32, flattened)
    # Σ −log2 p of the coded symbols under the model (z's prior, y's table scales): what
    # the eval-mode forward estimates, for the symbols this stream actually carries;
    # plus the Wiener filter's stream at its exact length (8 × wiener_bytes), side
    # information the model does not estimate. None unless `encode(..., estimate=True)`.
    estimated_bits: float | None = None
    post_filtered: bool = False  # the header's flag: the decoder applies the post-filter
    post_filter_ensemble: bool = False  # ... as its 8-orientation self-ensemble
    wiener_bytes: int = 0  # the Wiener filter's stream (0: none sent)


def as_rgb(img: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3]; gray [H, W] or [H, W, 1] is replicated, anything else refused."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {img.shape}"
                         + (" (RGBA: drop or flatten the alpha channel first)"
                            if img.ndim == 3 and img.shape[-1] == 4 else ""))  # fmt: skip
    if img.shape[0] < 1 or img.shape[1] < 1 or img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ValueError(f"image size {img.shape[0]}x{img.shape[1]} is out of range")
    return np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img


def padded_size(model, height: int, width: int) -> tuple[int, int]:
    m = model.pad_multiple
    return -(-height // m) * m, -(-width // m) * m


def pad_image(
    model, img: np.ndarray, placement: tuple[int, int] = (0, 0)
) -> tuple[jax.Array, tuple[int, int]]:
    """uint8 [H, W, 3] → (float32 [1, H', W', 3] in [0, 1], edge-padded; (H, W)).

    `placement` (top, left): rows of padding above the image and columns left of it
    (placement.py); the rest goes below and right. (0, 0), the default here, is the
    layout of training crops and of streams before placements; the codec centres.
    """
    img = as_rgb(img)
    h, w = img.shape[:2]
    hp, wp = padded_size(model, h, w)
    top, left = _checked_placement(placement, hp - h, wp - w)
    pads = ((top, hp - h - top), (left, wp - w - left), (0, 0))
    padded = np.pad(img, pads, mode="edge")
    return jnp.asarray(padded[None], jnp.float32) / 255.0, (h, w)


def _checked_placement(placement, pad_h: int, pad_w: int) -> tuple[int, int]:
    top, left = (int(v) for v in placement)
    if not (0 <= top <= pad_h and 0 <= left <= pad_w):
        raise ValueError(
            f"placement {tuple(placement)} outside the padding (0..{pad_h}, 0..{pad_w})"
        )
    return top, left


def crop_image(x, size: tuple[int, int], placement: tuple[int, int]):
    """[..., H', W', C] → the image's [..., H, W, C] at `placement` in the canvas."""
    (h, w), (top, left) = size, placement
    return x[..., top : top + h, left : left + w, :]


def to_uint8(x_hat) -> np.ndarray:
    """Converts float [1, H, W, 3] in [0, 1] to uint8 [H, W, 3], rounding on the host."""
    return np.clip(np.rint(np.asarray(x_hat[0], np.float32) * 255.0), 0, 255).astype(
        np.uint8
    )


@functools.lru_cache(maxsize=16)
def _functions(model):
    """The jitted pieces shared by encoder and decoder, compiled once per model."""

    def method(name, **static):
        fn = functools.partial(model.apply, method=name)
        return jax.jit(
            lambda params, *args, **kw: fn({"params": params}, *args, **kw),
            static_argnames=tuple(static),
        )

    def latent_bits(params, z_hat, y_symbols, y_index):
        bits_z = model.apply({"params": params}, z_hat, method="hyper_latent_bits")
        return bits_z.sum() + symbol_bits(y_symbols, y_index).sum()

    return {
        "analysis": method("analysis"),
        "hyper": method("hyper_synthesis"),
        "latent_bits": jax.jit(latent_bits),
        "step_parameters": method("step_parameters", step=None),
        "step_update": method("step_update", step=None),
        "synthesis": method("synthesis"),
    }


@functools.lru_cache(maxsize=64)
def _latent_shapes(model, hp: int, wp: int):
    x = jax.ShapeDtypeStruct((1, hp, wp, 3), jnp.float32)
    params = jax.eval_shape(
        lambda x: model.init(
            {"params": jax.random.key(0), "noise": jax.random.key(0)}, x
        ),
        x,
    )["params"]
    y, z = jax.eval_shape(
        lambda p, x: model.apply({"params": p}, x, method="analysis"), params, x
    )
    return tuple(y.shape), tuple(z.shape)


# Recent digests, keyed by the identities of the leaves; each entry holds its leaves so
# that their ids cannot be reused while it is cached. Hashing 30 MB of weights costs
# tens of milliseconds, which a small image would otherwise pay on every call.
_FINGERPRINT_CACHE: collections.OrderedDict = collections.OrderedDict()
_FINGERPRINT_CACHE_SIZE = 4


def fingerprint(variables) -> bytes:
    """8-byte BLAKE2b digest of every parameter and table (names, dtypes, shapes, bytes).

    Cached per set of leaf objects: arrays are treated as immutable (jax arrays are;
    a numpy leaf changed in place after a first call would keep its old digest).
    """
    from llic_jax.weights import flatten  # weights imports the models, not the codec

    flat = sorted(flatten(dict(variables)).items())
    key = tuple((name, id(value)) for name, value in flat)
    if key in _FINGERPRINT_CACHE:
        _FINGERPRINT_CACHE.move_to_end(key)
        return _FINGERPRINT_CACHE[key][1]
    digest = hashlib.blake2b(digest_size=8)
    for name, value in flat:
        value = np.ascontiguousarray(np.asarray(value))
        digest.update(f"{name}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    _FINGERPRINT_CACHE[key] = ([value for _, value in flat], digest.digest())
    if len(_FINGERPRINT_CACHE) > _FINGERPRINT_CACHE_SIZE:
        _FINGERPRINT_CACHE.popitem(last=False)
    return _FINGERPRINT_CACHE[key][1]


def _tables(variables):
    if "tables" not in variables:
        raise ValueError(
            "variables have no coding tables: call llic_jax.build_tables first"
        )
    return variables["tables"]


def _dequantized(symbols: np.ndarray, coarseness: int) -> np.ndarray:
    """What `step_update` adds to the means: the symbols, times the step if coarser.

    At coarseness 0 the int32 symbols themselves, as every stream before coarseness.
    """
    if not coarseness:
        return symbols
    return symbols.astype(np.float32) * latent_step(coarseness)


def _z_index(z_shape) -> np.ndarray:
    return np.broadcast_to(np.arange(z_shape[-1], dtype=np.int32), z_shape).ravel()


def encode(
    model,
    variables,
    img: np.ndarray,
    times: PhaseTimes | None = None,
    *,
    estimate: bool = False,
    refinement: Refinement | None = None,
    orientation: int = 0,
    placement: tuple[int, int] | None = None,
    progress: bool = False,
    post_filter: LoadedPostFilter | None = None,
    post_filter_ensemble: bool = False,
    wiener_lmbda: float | None = None,
    coarseness: int = 0,
) -> Encoded:
    """Compresses `img` (uint8 [H, W, 3]); also returns the encoder's reconstruction.

    `times`, if given, receives the network and coding seconds (coding/phase_times.py).
    `estimate` also fills `Encoded.estimated_bits` (one more small jitted function, whose
    compilation a one-off encode need not pay). `refinement`, if given, optimises the
    image's latents before coding them (coding/latent_refinement.py): slower encoding,
    the same decoder; its time is charged to "network"; `progress` shows its steps on
    stderr. `orientation` (0…7, coding/orientation.py) codes the image rotated and/or
    mirrored; the decoder turns it back (`orientation.choose_orientation` finds the
    cheapest). `placement` (top, left) puts the image, as coded (after the
    orientation), there in the padded canvas; None centres it (placement.py;
    `placement.choose_placement` finds the cheapest). `post_filter`, trained for
    these weights, is applied when it brings the reconstruction closer to `img`
    (module docstring); a refinement then optimises the latents for the filtered
    reconstruction. `post_filter_ensemble` also tries the filter's self-ensemble
    (eight filter passes here and in the decoder, where chosen; a refinement then
    serves the ensemble, one orientation per step). `wiener_lmbda`, if given, fits a
    per-image Wiener filter after all that and sends it where it lowers the RD cost at
    that λ (module docstring; the weights' own λ is the natural choice). `coarseness`
    k quantises y with the step r**k for a lower rate (entropy/coarseness.py); the
    refinement then serves that step, and RD searches at k are best given λ / r**2k
    (`coarser_lmbda`).
    """
    coarseness = check_coarseness(coarseness)
    step_size = latent_step(coarseness)
    if post_filter is not None and post_filter.codec_fingerprint != fingerprint(
        variables
    ):
        raise ValueError("the post-filter was trained for other weights")
    tables = _tables(variables)
    params = variables["params"]
    fns = _functions(model)
    img = as_rgb(img)
    coded = orient(img, orientation)
    if placement is None:
        placement = centred_placement(model, *coded.shape[:2])
    x, (h, w) = pad_image(model, coded, placement)
    placement = _checked_placement(placement, x.shape[1] - h, x.shape[2] - w)

    def crop(image):  # the image's own pixels of a padded [1, H', W', 3] canvas
        return crop_image(image, (h, w), placement)

    with phase(times, "network"):
        y, z = fns["analysis"](params, x)
        if refinement is not None:
            (y, z), _ = refine_latents(
                model, params, x, (h, w), y, z, refinement,
                progress=progress, post_filter=post_filter, placement=placement,
                ensemble=post_filter is not None and post_filter_ensemble,
                coarseness=coarseness,
            )  # fmt: skip
        y, z = jax.device_get((y, z))

    with phase(times, "coding"):
        z_table = tables["z"]
        z_symbols = np.rint(z).astype(np.int32)
        index = _z_index(z.shape)
        z_coder = range_coder.RangeEncoder(z_table["lookup"])
        z_coder.encode(index, z_symbols.ravel() - z_table["offset"][index])
        symbols = [z_symbols.ravel()]
        y_table = tables["y"]
        y_coder = range_coder.RangeEncoder(y_table["lookup"])

    with phase(times, "network"):
        hyper = jax.block_until_ready(
            fns["hyper"](params, jnp.asarray(z_symbols, jnp.float32))
        )
    y_hat = jnp.zeros(y.shape, jnp.float32)
    # Every position of y belongs to exactly one step: gather its symbol and table index.
    y_symbols = np.zeros(y.shape, np.int32)
    y_index = np.zeros(y.shape, np.int32)
    for step, mask in enumerate(model.coding_masks(y.shape[1:])):
        with phase(times, "network"):
            index, mean = jax.device_get(
                fns["step_parameters"](params, hyper, y_hat, step=step)
            )
        with phase(times, "coding"):
            residual = y[0] - mean[0]
            if coarseness:
                residual = residual / step_size
            step_symbols = np.rint(residual).astype(np.int32)[mask]
            step_index = coarser_index(index[0][mask], coarseness)
            y_coder.encode(step_index, step_symbols - y_table["offset"][step_index])
            symbols.append(step_symbols)
            full = np.zeros(y.shape, np.int32)
            full[0][mask] = step_symbols
            y_symbols[0][mask] = step_symbols
            y_index[0][mask] = step_index
        with phase(times, "network"):
            y_hat = jax.block_until_ready(fns["step_update"](
                params, hyper, y_hat, _dequantized(full, coarseness), mean, step=step
            ))  # fmt: skip
    with phase(times, "network"):
        x_hat = jax.device_get(fns["synthesis"](params, y_hat))
    reconstruction = unorient(to_uint8(crop(x_hat)), orientation)
    decoded = x_hat  # the float image behind `reconstruction`, padded, coded orientation
    post_filtered = ensembled = 0
    filter_modes = []
    if post_filter is not None:
        filter_modes = [False, True] if post_filter_ensemble else [False]
    for ensemble in filter_modes:  # the closest image wins; ties keep the cheaper
        with phase(times, "network"):
            filtered_float = jax.device_get(post_filter(x_hat, ensemble=ensemble))
            filtered = unorient(to_uint8(crop(filtered_float)), orientation)
        if _sse(filtered, img) < _sse(reconstruction, img):
            reconstruction, post_filtered, ensembled = filtered, 1, int(ensemble)
            decoded = filtered_float
    estimated_bits = None
    if estimate:
        z_hat = z_symbols.astype(np.float32)
        estimated_bits = float(fns["latent_bits"](params, z_hat, y_symbols, y_index))
    streams_extra = []
    if wiener_lmbda is not None:
        with phase(times, "network"):
            wiener_stream, reconstruction = _wiener(
                img, orientation, crop(decoded)[0],
                crop(x_hat)[0] if post_filtered else None, reconstruction,
                wiener_lmbda,
            )  # fmt: skip
        streams_extra = [wiener_stream] if wiener_stream else []
        if estimated_bits is not None:
            estimated_bits += 8 * len(wiener_stream)

    header = container.Header(  # pack() fills in the stream lengths
        fingerprint=fingerprint(variables),
        height=h,
        width=w,
        padded_height=x.shape[1],
        padded_width=x.shape[2],
        pad_mode=PAD_REPLICATE,
        pad_top=placement[0],
        pad_left=placement[1],
        orientation=orientation,
        post_filtered=post_filtered,
        post_filter_ensemble=ensembled,
        wiener_filtered=int(bool(streams_extra)),
        coarseness=coarseness,
        symbols_crc32=container.symbols_crc32(symbols),
    )
    with phase(times, "coding"):
        streams = [z_coder.finish(), y_coder.finish(), *streams_extra]
    blob = container.pack(header, streams)
    return Encoded(blob, reconstruction, symbols, estimated_bits, bool(post_filtered),
                   bool(ensembled), sum(map(len, streams_extra)))  # fmt: skip


def _wiener(img, orientation, shown, synthesis, reconstruction, lmbda):
    """(the Wiener filter's stream or b"", the reconstruction it gives or the one given).

    `shown` is the float image behind `reconstruction` and `synthesis` the one before the
    post-filter (None where it did not run), both cropped, in the coded orientation,
    where the filter is fitted. It is kept only if the RD cost of the 8-bit result, its
    stream and that stream's length field included, is lower than without it.
    """
    filtered = np.asarray(shown, np.float32)
    if synthesis is not None:
        synthesis = np.asarray(synthesis, np.float32)
    # extra_bits: the stream's length field in the header, one byte below 128 bytes
    wiener = fit_wiener_filter(orient(img, orientation), filtered, synthesis, lmbda,
                               extra_bits=8)  # fmt: skip
    if wiener is None:
        return b"", reconstruction
    stream = encode_wiener_filter(wiener)
    filtered = apply_wiener_filter(wiener, filtered, synthesis)
    candidate = unorient(to_uint8(filtered[None]), orientation)
    bits = 8 * (len(stream) + container.length_field_bytes(len(stream)))
    delta_sse = _sse(candidate, img) - _sse(reconstruction, img)
    if bits + lmbda * delta_sse / 3 >= 0:  # both sides per pixel, times the pixels
        return b"", reconstruction
    return stream, candidate


def _sse(a: np.ndarray, b: np.ndarray) -> int:
    """Sum of squared differences of two uint8 images of the same shape."""
    return int(np.sum((a.astype(np.int64) - b.astype(np.int64)) ** 2))


def compress(
    model,
    variables,
    img: np.ndarray,
    *,
    refinement: Refinement | None = None,
    orientation: int = 0,
    placement: tuple[int, int] | None = None,
    post_filter: LoadedPostFilter | None = None,
    post_filter_ensemble: bool = False,
    wiener_lmbda: float | None = None,
    coarseness: int = 0,
) -> bytes:
    """uint8 [H, W, 3] (gray is replicated to RGB) → bitstream bytes.

    `refinement` optimises the latents for this image first; `orientation` codes it
    rotated or mirrored; `placement` puts it elsewhere than the centre of its padded
    canvas; `post_filter` may improve the reconstruction, and
    `post_filter_ensemble` the filter's self-ensemble; `wiener_lmbda` sends a per-image
    Wiener filter where it pays at that λ; `coarseness` quantises the latents coarser
    than the weights were trained for, for a lower rate (see `encode`).
    """
    return encode(
        model,
        variables,
        img,
        refinement=refinement,
        orientation=orientation,
        placement=placement,
        post_filter=post_filter,
        post_filter_ensemble=post_filter_ensemble,
        wiener_lmbda=wiener_lmbda,
        coarseness=coarseness,
    ).blob


def decompress(
    model,
    variables,
    blob: bytes,
    times: PhaseTimes | None = None,
    post_filter: LoadedPostFilter | None = None,
) -> np.ndarray:
    """Bitstream → uint8 [H, W, 3].

    `times`, if given, receives the network and coding seconds (coding/phase_times.py).
    `post_filter`: the one trained for these weights, needed by streams whose header
    says the encoder chose it (ignored otherwise).

    Raises:
      BitstreamError: the stream is malformed, truncated, corrupt, was made by another
        model or other weights, or needs a post-filter that was not given.
    """
    header, streams = container.unpack(bytes(blob))
    tables = _tables(variables)
    if header.model_name not in (None, model.model_name):  # only version 1 names it
        raise BitstreamError(f"stream was made by model {header.model_name!r}, "
                             f"not {model.model_name!r}")  # fmt: skip
    if header.fingerprint != fingerprint(variables):
        raise BitstreamError("stream was made with other weights or tables (or model)")
    if (header.padded_height, header.padded_width) != padded_size(
        model, header.height, header.width
    ) or header.pad_mode != PAD_REPLICATE:
        raise BitstreamError("padding in the header does not match the model")
    if header.height * header.width > MAX_PIXELS:
        raise BitstreamError("image size in the header is out of range")
    if len(streams) != 2 + header.wiener_filtered:
        raise BitstreamError(
            f"expected {2 + header.wiener_filtered} streams, found {len(streams)}"
        )
    wiener = decode_wiener_filter(streams[2]) if header.wiener_filtered else None
    if wiener is not None and wiener.with_synthesis != bool(header.post_filtered):
        raise BitstreamError("wiener filter taps do not match the post-filter flag")
    if header.post_filtered and post_filter is None:
        raise BitstreamError(
            "stream needs the post-filter of its weights; none was given"
        )
    if header.post_filtered and post_filter.codec_fingerprint != header.fingerprint:
        raise BitstreamError("the post-filter given was trained for other weights")

    params = variables["params"]
    fns = _functions(model)
    y_shape, z_shape = _latent_shapes(model, header.padded_height, header.padded_width)

    with phase(times, "coding"):
        z_table = tables["z"]
        index = _z_index(z_shape)
        z_coder = range_coder.RangeDecoder(streams[0], z_table["lookup"])
        z_symbols = z_coder.decode(index) + z_table["offset"][index]
        symbols = [z_symbols]
        y_table = tables["y"]
        y_coder = range_coder.RangeDecoder(streams[1], y_table["lookup"])

    with phase(times, "network"):
        hyper = jax.block_until_ready(
            fns["hyper"](params, jnp.asarray(z_symbols.reshape(z_shape), jnp.float32))
        )
    y_hat = jnp.zeros(y_shape, jnp.float32)
    for step, mask in enumerate(model.coding_masks(y_shape[1:])):
        with phase(times, "network"):
            index, mean = jax.device_get(
                fns["step_parameters"](params, hyper, y_hat, step=step)
            )
        with phase(times, "coding"):
            step_index = coarser_index(index[0][mask], header.coarseness)
            step_symbols = y_coder.decode(step_index) + y_table["offset"][step_index]
            symbols.append(step_symbols)
            full = np.zeros(y_shape, np.int32)
            full[0][mask] = step_symbols
        with phase(times, "network"):
            y_hat = jax.block_until_ready(fns["step_update"](
                params, hyper, y_hat, _dequantized(full, header.coarseness), mean,
                step=step,
            ))  # fmt: skip

    with phase(times, "coding"):
        clean_end = z_coder.finish() and y_coder.finish()
        crc = container.symbols_crc32(symbols)
    if not clean_end:
        raise BitstreamError("range decoder did not end cleanly: stream is corrupt")
    if crc != header.symbols_crc32:
        raise BitstreamError("decoded symbols fail the CRC check: stream is corrupt, or "
                             "was encoded on a device whose arithmetic differs")  # fmt: skip
    with phase(times, "network"):
        x_hat = fns["synthesis"](params, y_hat)
        synthesis = x_hat
        if header.post_filtered:
            x_hat = post_filter(x_hat, ensemble=bool(header.post_filter_ensemble))
        size = (header.height, header.width)
        placement = (header.pad_top, header.pad_left)
        x_hat = np.asarray(crop_image(jax.device_get(x_hat), size, placement), np.float32)
        if wiener is not None:
            x_hat = apply_wiener_filter(
                wiener, x_hat[0],
                np.asarray(crop_image(synthesis, size, placement)[0], np.float32)
                if header.post_filtered else None,
            )[None]  # fmt: skip
    return unorient(to_uint8(x_hat), header.orientation)
