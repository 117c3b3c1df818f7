"""tf.data input pipeline: random training crops and held-out eval images.

Sources (`Source`): a folder of images (recursive; png, jpg, jpeg, webp, bmp) or a
tensorflow-datasets split (`clic`, `div2k` (its `hr` feature), `imagenet2012`, …).

Training stream, per example: decode → optional box downscale by an integer factor →
random `patch_size`² crop → random horizontal flip (vertical flip off by default); then
batches of the per-process batch size, float32 in [0, 1], NHWC, as numpy.

- Decoding (our choice): TensorFlow's own decoders, in tf.data's C++ thread pool,
  without the GIL, the same code for files and tfds records. JPEG uses
  `dct_method="INTEGER_ACCURATE"`: TF's default (fast integer IDCT) differs from
  PIL/libjpeg by up to 9 levels, the accurate one matches PIL exactly. WebP, which TF
  2.17 cannot decode, goes through PIL in `tf.numpy_function`. Gray becomes RGB, alpha
  is dropped; EXIF orientation is ignored (as PIL's `Image.open` does).
- Downscale: the mean of each `factor`² box, boxes anchored at the top-left corner; the
  partial boxes of the bottom and right edges average the pixels they hold, so the
  output is ceil(H/f) × ceil(W/f), rounded half up to uint8. Exactly PIL's
  `Image.reduce(2)`, as `llic_jax.evaluate.load_images` (bsds300 JPEGs are halved to
  hide their artefacts); for other factors PIL's fixed-point rounding can differ by
  one level. Only the window under the crop is downscaled (same result, less work).
- Images whose (downscaled) side is under the patch: `small_images="skip"` (default)
  leaves them out; `"pad"` extends them by reflection (numpy's "reflect" mode, repeated
  for images under half the patch), image at the top-left corner.
- Deterministic resume, no stateful randomness: example g of this process's stream
  (batch s holds g = s·b … s·b + b − 1) is cropped and flipped by stateless ops keyed
  on (seed, process, g); epoch e's order is keyed on (seed, process, e). Folders:
  `tf.random.experimental.index_shuffle` maps g to a file directly, so `start_step=s`
  costs nothing. tfds records are streamed: epoch e is the split through a shuffle
  buffer seeded by (seed, e) (and TF's global seed: leave it unset); resuming starts
  at epoch s·b // E and skips the rest inside it on encoded records, without
  decoding: at most one epoch of reading. E, the usable records, is the split's size,
  or for "skip" counted by one more header-only pass (JPEG/PNG headers).
- Multi-host: the batch size is global, each process gets batch_size / process_count.
  Folders: the sorted file list is sharded as `Dataset.shard(count, index)` would (file
  i goes to process i mod count), then filtered, so a process reads only its own
  headers. tfds: `tfds.split_for_jax_process` (`tfds.even_splits` of the split).

TensorFlow is imported lazily and never claims GPUs: this module imports without it.
"""

import contextlib
import dataclasses
import io
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "Source",
    "import_tensorflow",
    "list_images",
    "load_eval_images",
    "make_train_dataset",
    "make_train_iterator",
    "training_files",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_SMALL_POLICIES = ("skip", "pad")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where training images come from: a folder, or a tensorflow-datasets split.

    Attributes:
        folder: a directory, searched recursively (files sorted by relative path).
        tfds_name: a tfds dataset name (with an optional config/version).
        split: the tfds split (any tfds split string).
        data_dir: the tfds data directory; None: `$TFDS_DATA_DIR` or tfds' default.
        manual_dir: for datasets downloaded by hand (imagenet2012); implies preparing.
        image_key: the image feature; None: "image", else "hr" (div2k), else the only
            image feature.
        download: download and prepare the dataset if needed (off: on a pod every
            host would do it; run `tfds build` once instead).
    """

    folder: str | None = None
    tfds_name: str | None = None
    split: str = "train"
    data_dir: str | None = None
    manual_dir: str | None = None
    image_key: str | None = None
    download: bool = False

    def __post_init__(self):
        if (self.folder is None) == (self.tfds_name is None):
            raise ValueError("data source: give exactly one of folder= and tfds_name=")

    @classmethod
    def parse(cls, source: Any) -> "Source":
        """A `Source` from a Source, a mapping / ConfigDict, or a folder path."""
        if isinstance(source, Source):
            return source
        if isinstance(source, str | os.PathLike):
            return cls(folder=os.fspath(source))
        if hasattr(source, "to_dict"):
            source = source.to_dict()
        if not isinstance(source, Mapping):
            raise ValueError(
                f"data source: expected a folder or a mapping, not {source!r}"
            )
        unknown = set(source) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"data source: unknown keys {sorted(unknown)}")
        return cls(**source)


def import_tensorflow():
    """TensorFlow, imported on first use, with GPUs hidden from it (JAX keeps them)."""
    import tensorflow as tf

    # Fails once TF is initialised: its device choice is made by then.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")
    return tf


_tf = import_tensorflow

# ----------------------------------------------------------------------------- files


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under `folder` (recursive), sorted by relative path.

    Hidden files and folders (names starting with ".") are ignored.

    Raises:
        ValueError: if `folder` is not a directory or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such directory")
    paths = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    ]
    if not paths:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(paths, key=lambda p: p.relative_to(folder).as_posix())


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: cannot read image ({e})") from None


def training_files(
    folder: str | os.PathLike,
    *,
    patch_size: int,
    downscale: int = 1,
    small_images: str = "skip",
    process_index: int = 0,
    process_count: int = 1,
) -> list[Path]:
    """The files of `folder` that process `process_index` trains on.

    The sorted list is sharded first (file i to process i mod process_count), then,
    with `small_images="skip"`, files under `patch_size` a side after the downscale
    are dropped (only this shard's headers are read).

    Raises:
        ValueError: for a missing or empty folder, or a shard with no usable image.
    """
    paths = list_images(folder)
    if len(paths) < process_count:
        raise ValueError(f"{folder}: {len(paths)} images for {process_count} processes")
    paths = paths[process_index::process_count]
    if small_images == "skip":
        paths = [
            p
            for p in paths
            if min(-(-n // downscale) for n in _image_size(p)) >= patch_size
        ]
        if not paths:
            raise ValueError(
                f"{folder}: no image of at least {patch_size}×{patch_size} pixels "
                f"(after downscale ×{downscale}) for process {process_index}"
            )
    return paths


# ----------------------------------------------------------------- image operations


def _pil_decode(data) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(np.asarray(data).item())) as img:
        return np.asarray(img.convert("RGB"))


def _decode(tf, data):
    """Encoded image (scalar string) → uint8 [H, W, 3]."""
    head = tf.strings.substr(data, 0, 4)
    is_jpeg = tf.strings.substr(data, 0, 3) == b"\xff\xd8\xff"
    is_native = (
        (head == b"\x89PNG")
        | (head == b"GIF8")
        | (tf.strings.substr(data, 0, 2) == b"BM")
    )
    img = tf.case(
        [
            (is_jpeg, lambda: tf.io.decode_jpeg(data, 3, dct_method="INTEGER_ACCURATE")),
            (
                is_native,
                lambda: tf.io.decode_image(data, 3, tf.uint8, expand_animations=False),
            ),
        ],
        default=lambda: tf.numpy_function(_pil_decode, [data], tf.uint8, stateful=False),
    )
    img.set_shape([None, None, 3])
    return img


def _encoded_hw(tf, data):
    """(height, width) of an encoded image; JPEG and PNG from their headers."""
    is_jpeg = tf.strings.substr(data, 0, 3) == b"\xff\xd8\xff"
    is_png = tf.strings.substr(data, 0, 4) == b"\x89PNG"
    return tf.case(
        [
            (is_jpeg, lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int32)),
            (
                is_png,  # IHDR: width, height as big-endian int32 at byte 16
                lambda: tf.reverse(
                    tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.int32, False), [0]
                ),
            ),
        ],
        default=lambda: tf.shape(_decode(tf, data))[:2],
    )


def _downscale(tf, img, factor: int):
    """Box downscale uint8 [H, W, 3] → [ceil(H/f), ceil(W/f), 3] (module docstring)."""
    if factor == 1:
        return img
    h, w = tf.shape(img)[0], tf.shape(img)[1]
    hd, wd = -(-h // factor), -(-w // factor)
    x = tf.pad(
        tf.cast(img, tf.int32), [[0, hd * factor - h], [0, wd * factor - w], [0, 0]]
    )
    sums = tf.reduce_sum(tf.reshape(x, [hd, factor, wd, factor, 3]), axis=[1, 3])
    rows = tf.minimum(factor, h - factor * tf.range(hd))
    cols = tf.minimum(factor, w - factor * tf.range(wd))
    count = rows[:, None, None] * cols[None, :, None]
    return tf.cast((2 * sums + count) // (2 * count), tf.uint8)


def _reflect(tf, index, n):
    """Reflection of `index` into [0, n) without repeating the edge, periodic."""
    period = tf.maximum(2 * n - 2, 1)
    i = index % period
    return tf.where(i < n, i, period - i)


def _axis_window(tf, n, patch: int, factor: int, u):
    """Crop plan along one axis of length n, offset drawn by `u` in [0, 1).

    Returns the window (start, size) in source pixels and `patch` indices into the
    downscaled window.
    """
    nd = -(-n // factor)
    fits = nd >= patch
    offset = tf.cast(
        tf.floor(u * tf.cast(tf.maximum(nd - patch + 1, 1), u.dtype)), n.dtype
    )
    offset = tf.minimum(offset, tf.maximum(nd - patch, 0))
    start = tf.where(fits, offset * factor, 0)
    size = tf.where(fits, tf.minimum(patch * factor, n - start), n)
    index = tf.range(patch, dtype=n.dtype)
    return start, size, tf.where(fits, index, _reflect(tf, index, nd))


def _random_crop(tf, img, key, *, patch: int, factor: int, hflip: bool, vflip: bool):
    """uint8 [patch, patch, 3]: the crop of example `key` (stateless)."""
    u = tf.random.stateless_uniform([4], seed=key, dtype=tf.float64)
    h, w = tf.shape(img)[0], tf.shape(img)[1]
    top, height, rows = _axis_window(tf, h, patch, factor, u[0])
    left, width, cols = _axis_window(tf, w, patch, factor, u[1])
    window = _downscale(tf, img[top : top + height, left : left + width], factor)
    if hflip:
        cols = tf.where(u[2] < 0.5, tf.reverse(cols, [0]), cols)
    if vflip:
        rows = tf.where(u[3] < 0.5, tf.reverse(rows, [0]), rows)
    crop = tf.gather(tf.gather(window, rows, axis=0), cols, axis=1)
    crop.set_shape([patch, patch, 3])
    return crop


# ------------------------------------------------------------------------ streams


def _key(seed: int, process_index: int, purpose: int) -> int:
    """A 62-bit integer derived from (seed, process, purpose)."""
    words = np.random.SeedSequence([seed, process_index, purpose]).generate_state(2)
    return (int(words[0]) << 30) ^ int(words[1])


def _folder_records(tf, files: list[Path], first: int, perm_key: int):
    """(g, encoded bytes) for g = first, first + 1, …: epoch g // n, a permutation."""
    paths = tf.constant([os.fspath(p) for p in files])
    n = tf.constant(len(files), tf.int64)

    def record(g):
        seed = tf.stack([tf.constant(perm_key, tf.int64), g // n])
        i = tf.random.experimental.index_shuffle(g % n, seed, n - 1)
        return g, tf.io.read_file(tf.gather(paths, i))

    return tf.data.Dataset.counter(first).map(record, num_parallel_calls=tf.data.AUTOTUNE)


def _open_tfds(tf, source: Source, process_index: int, process_count: int):
    """This process's slice of the split: a dataset of encoded images."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(source.tfds_name, data_dir=source.data_dir)
        features = builder.info.features
        images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
        key = source.image_key or next((k for k in ("image", "hr") if k in images), None)
        key = key or (images[0] if len(images) == 1 else None)
        if key not in images:
            raise ValueError(f"choose image_key= among the image features {images}")
        if source.download or source.manual_dir:
            config = tfds.download.DownloadConfig(manual_dir=source.manual_dir)
            builder.download_and_prepare(download_config=config)
        split = tfds.split_for_jax_process(
            source.split, process_index=process_index, process_count=process_count
        )
        skip_decoding = {k: tfds.decode.SkipDecoding() for k in images}
        records = builder.as_dataset(
            split=split, shuffle_files=False, decoders=skip_decoding
        )
    except (ValueError, AssertionError, OSError, tf.errors.OpError) as e:
        message = (str(e).strip() or type(e).__name__).splitlines()[0]
        raise ValueError(f"tfds dataset {source.tfds_name!r}: {message}") from None
    return records.map(lambda example: example[key])


def _tfds_records(tf, records, first: int, perm_key: int, buffer: int):
    """(g, encoded bytes) for g = first, …: the records shuffled anew every epoch."""
    epoch0, skip = 0, 0
    if first:
        count = int(records.cardinality())
        if count < 0:  # unknown (filtered): one pass over the headers, no decoding
            count = int(records.reduce(np.int64(0), lambda c, _: c + 1))
        epoch0, skip = divmod(first, count)

    def epoch(e):
        seed = perm_key % 2**31 + e * 2**31
        shuffled = records.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
        return shuffled.skip(tf.where(e == epoch0, tf.constant(skip, tf.int64), 0))

    stream = tf.data.Dataset.counter(epoch0).flat_map(epoch)
    return tf.data.Dataset.zip(tf.data.Dataset.counter(first), stream)


def _check_arguments(patch_size, batch_size, seed, start_step, process_index,
                     process_count, downscale, small_images):  # fmt: skip
    if small_images not in _SMALL_POLICIES:
        raise ValueError(
            f"small_images: {small_images!r} is not one of {_SMALL_POLICIES}"
        )
    if min(patch_size, downscale, batch_size) < 1 or min(seed, start_step) < 0:
        raise ValueError("patch, downscale and batch size ≥ 1, seed and start step ≥ 0")
    if not 0 <= process_index < process_count or batch_size % process_count:
        raise ValueError(
            f"process {process_index} of {process_count}, batch size {batch_size}: "
            "the batch size must be a multiple of the process count"
        )


def make_train_dataset(
    source: Any,
    *,
    patch_size: int,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
    downscale: int = 1,
    small_images: str = "skip",
    horizontal_flip: bool = True,
    vertical_flip: bool = False,
    shuffle_buffer: int = 256,
):
    """The infinite training stream of this process, from batch `start_step` on.

    Args:
        source: a `Source`, a mapping of its fields ({"folder": …} or
            {"tfds_name": …, "split": …, "data_dir": …}), or a folder path.
        patch_size: side of the square crops.
        batch_size: the global batch size; each process yields batch_size / count.
        seed: non-negative; the whole stream is a function of it (and of the
            arguments below, the process index and count, and the source's content).
        start_step: first batch to yield: batches s, s+1, … equal those an
            uninterrupted stream yields at those steps.
        process_index, process_count: this process among all; None: JAX's.
        downscale: integer box-downscale factor applied before cropping.
        small_images: "skip" or "pad" (by reflection) images under the patch.
        horizontal_flip, vertical_flip: random flips, each with probability 1/2.
        shuffle_buffer: tfds only: records (still encoded) in the shuffle buffer.

    Returns:
        A `tf.data.Dataset` of float32 [batch_size / process_count, P, P, 3] in [0, 1].

    Raises:
        ValueError: for bad arguments or a source with no usable image (one line).
    """
    source = Source.parse(source)
    tf = _tf()  # before JAX: TF must not claim the GPUs
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    _check_arguments(patch_size, batch_size, seed, start_step, process_index,
                     process_count, downscale, small_images)  # fmt: skip
    local_batch = batch_size // process_count
    first = start_step * local_batch
    perm_key, crop_key = (_key(seed, process_index, purpose) for purpose in (0, 1))
    if source.folder is not None:
        files = training_files(source.folder, patch_size=patch_size, downscale=downscale,
                               small_images=small_images, process_index=process_index,
                               process_count=process_count)  # fmt: skip
        records = _folder_records(tf, files, first, perm_key)
    else:
        records = _open_tfds(tf, source, process_index, process_count)
        if small_images == "skip":
            records = records.filter(
                lambda x: tf.reduce_min(-(-_encoded_hw(tf, x) // downscale)) >= patch_size
            )
        if next(iter(records.take(1)), None) is None:
            raise ValueError(f"tfds dataset {source.tfds_name!r}: no usable image")
        records = _tfds_records(tf, records, first, perm_key, shuffle_buffer)

    def example(g, data):
        key = tf.stack([tf.constant(crop_key, tf.int64), g])
        return _random_crop(tf, _decode(tf, data), key, patch=patch_size, factor=downscale,
                            hflip=horizontal_flip, vflip=vertical_flip)  # fmt: skip

    ds = records.map(example, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(local_batch, drop_remainder=True)
    ds = ds.map(lambda x: tf.cast(x, tf.float32) / 255.0)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def make_train_iterator(source: Any, **kwargs) -> Iterator[np.ndarray]:
    """`make_train_dataset(source, **kwargs)` as an iterator of numpy batches."""
    return make_train_dataset(source, **kwargs).as_numpy_iterator()


def load_eval_images(
    folder: str | os.PathLike, *, downscale: int = 1
) -> list[tuple[str, np.ndarray]]:
    """(relative path, uint8 [H, W, 3]) for every image under `folder`, whole.

    Decoded and downscaled as the training stream does.

    Raises:
        ValueError: for a missing or empty folder, or an unreadable image.
    """
    tf = _tf()
    out = []
    for path in list_images(folder):
        try:
            img = _decode(tf, tf.constant(path.read_bytes()))
        except (tf.errors.OpError, OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read image ({type(e).__name__})") from None
        img = _downscale(tf, img, downscale).numpy()
        out.append((path.relative_to(folder).as_posix(), img))
    return out
