"""Tests of llic_jax.data: crops, determinism, resume, sharding, policies, errors, tfds."""

import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from llic_jax import data

RNG = np.random.default_rng(0)


def tagged(tag: int, h: int, w: int) -> np.ndarray:
    """uint8 [h, w, 3]: channel 0 is the constant `tag`, channels 1-2 noise."""
    img = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[..., 0] = tag
    return img


def save(path: Path, img: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, **kwargs)
    return path


def tagged_folder(folder: Path, sizes) -> dict[int, np.ndarray]:
    """PNG files tagged 1, 2, …; returns {tag: image}."""
    images = {i + 1: tagged(i + 1, h, w) for i, (h, w) in enumerate(sizes)}
    for tag, img in images.items():
        save(folder / f"img{tag - 1:02d}.png", img)
    return images


def batches(source, steps: int, **kwargs) -> np.ndarray:
    kwargs = {"patch_size": 8, "batch_size": 2, "seed": 0, "process_count": 1,
              "process_index": 0, **kwargs}  # fmt: skip
    return np.stack(
        list(itertools.islice(data.make_train_iterator(source, **kwargs), steps))
    )


def tags(crops: np.ndarray) -> np.ndarray:
    """The tag of each crop [..., P, P, 3] (channel 0 is constant within a crop)."""
    c0 = np.round(crops[..., 0] * 255).astype(int)
    assert (c0 == c0[..., :1, :1]).all()
    return c0[..., 0, 0].ravel()


def window_matches(crop: np.ndarray, sources, patch: int) -> set:
    """{(source index, flip)} for every window of `sources` equal to a flip of `crop`."""
    variants = {"": crop, "h": crop[:, ::-1], "v": crop[::-1], "hv": crop[::-1, ::-1]}
    found = set()
    for i, src in enumerate(sources):
        windows = np.lib.stride_tricks.sliding_window_view(src, (patch, patch, 3))
        for name, v in variants.items():
            if (windows == v).all(axis=(-3, -2, -1)).any():
                found.add((i, name))
    return found


def test_shapes_dtype_range(tmp_path):
    tagged_folder(tmp_path, [(20, 24), (16, 30), (33, 17)])
    out = batches(tmp_path, 3, patch_size=16, batch_size=4)
    assert out.shape == (3, 4, 16, 16, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and out.max() > 0.9
    np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-4)  # from uint8


@pytest.mark.parametrize("vertical_flip", [False, True])
def test_crops_are_windows_of_downscaled_sources(tmp_path, vertical_flip):
    # Noise images, odd sizes (partial boxes at the edges), one JPEG; one image is only
    # just above the patch after the downscale, so its crops hold the edge boxes.
    sizes = [(41, 37), (17, 19), (30, 45)]
    paths = [
        save(tmp_path / f"a{i}.png", tagged(i, h, w)) for i, (h, w) in enumerate(sizes)
    ]
    paths.append(save(tmp_path / "b.jpg", RNG.integers(0, 256, (36, 28, 3), np.uint8)))
    refs = [np.asarray(Image.open(p).convert("RGB").reduce(2)) for p in paths]
    out = batches(tmp_path, 8, batch_size=4, downscale=2, vertical_flip=vertical_flip)
    flips = []
    for crop in out.reshape(-1, 8, 8, 3):
        found = window_matches(np.round(crop * 255).astype(np.uint8), refs, 8)
        assert len(found) == 1, found
        flips.append(found.pop()[1])
    assert "" in flips and "h" in flips
    assert any("v" in f for f in flips) == vertical_flip


def test_downscale_matches_pil_reduce_and_box_mean(tmp_path):
    img = RNG.integers(0, 256, (23, 17, 3), np.uint8)
    save(tmp_path / "x.png", img)
    ((_, two),) = data.load_eval_images(tmp_path, downscale=2)
    np.testing.assert_array_equal(two, np.asarray(Image.fromarray(img).reduce(2)))
    ((_, three),) = data.load_eval_images(tmp_path, downscale=3)
    padded = np.zeros((24, 18, 3)), np.zeros((24, 18, 1))
    padded[0][:23, :17], padded[1][:23, :17] = img, 1
    s, n = (a.reshape(8, 3, 6, 3, -1).sum(axis=(1, 3)) for a in padded)
    np.testing.assert_array_equal(three, np.floor(s / n + 0.5))


def test_eval_images_formats_and_names(tmp_path):
    rgb = RNG.integers(0, 256, (9, 13, 3), np.uint8)
    rgba = np.dstack([rgb, RNG.integers(0, 256, (9, 13, 1), np.uint8)])
    save(tmp_path / "gray.png", rgb[..., 0])
    save(tmp_path / "sub" / "rgba.png", rgba)
    save(tmp_path / "sub" / "deep" / "c.webp", rgb, lossless=True)
    save(tmp_path / "d.BMP", rgb)
    save(tmp_path / "e.jpeg", rgb, quality=90)
    save(tmp_path / ".hidden.png", rgb)
    (tmp_path / "notes.txt").write_text("not an image")
    loaded = data.load_eval_images(tmp_path)
    names = [name for name, _ in loaded]
    assert names == ["d.BMP", "e.jpeg", "gray.png", "sub/deep/c.webp", "sub/rgba.png"]
    for name, img in loaded:
        expected = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        assert img.dtype == np.uint8 and img.shape == (9, 13, 3)
        np.testing.assert_array_equal(img, expected, err_msg=name)


def test_same_seed_same_batches_other_seed_other_batches(tmp_path):
    tagged_folder(tmp_path, [(20, 24), (16, 30), (33, 17)])
    a, b = batches(tmp_path, 4, seed=3), batches(tmp_path, 4, seed=3)
    np.testing.assert_array_equal(a, b)
    # process_index / process_count default to JAX's (0 of 1 here).
    stream = data.make_train_iterator(tmp_path, patch_size=8, batch_size=2, seed=3)
    np.testing.assert_array_equal(np.stack([next(stream) for _ in range(4)]), a)
    assert not np.array_equal(a, batches(tmp_path, 4, seed=4))


@pytest.mark.parametrize("process_index", [0, 1])
def test_resume_equals_uninterrupted_stream(tmp_path, process_index):
    tagged_folder(tmp_path, [(20, 24), (16, 30), (33, 17), (12, 12), (40, 9)])
    kwargs = {"batch_size": 6, "process_count": 2, "process_index": process_index}
    fresh = batches(tmp_path, 9, **kwargs)  # 3 or 2 images per process, 3 a batch
    resumed = batches(tmp_path, 4, start_step=5, **kwargs)
    np.testing.assert_array_equal(resumed, fresh[5:])


def test_process_shards_are_disjoint_and_cover_the_folder(tmp_path):
    tagged_folder(tmp_path, [(10, 10)] * 7)
    everything = data.list_images(tmp_path)
    shards = [
        data.training_files(tmp_path, patch_size=8, process_index=i, process_count=2)
        for i in range(2)
    ]
    assert sorted(shards[0] + shards[1]) == everything and not set(shards[0]) & set(
        shards[1]
    )
    for i, shard in enumerate(shards):
        shard_tags = {int(p.stem[3:]) + 1 for p in shard}
        out = tags(batches(tmp_path, 8, batch_size=4, process_count=2, process_index=i))
        # Each epoch of the stream is a permutation of the shard, a new one each time.
        epochs = [tuple(out[e * len(shard) : (e + 1) * len(shard)]) for e in range(4)]
        assert all(sorted(order) == sorted(shard_tags) for order in epochs)
        assert len(set(epochs)) > 1


def test_small_images_skipped_or_reflection_padded(tmp_path):
    images = tagged_folder(tmp_path, [(5, 7), (3, 3), (30, 30)])
    assert set(tags(batches(tmp_path, 6, patch_size=12))) == {3}
    out = batches(tmp_path, 12, patch_size=12, small_images="pad", vertical_flip=True)
    seen = set()
    for crop in out.reshape(-1, 12, 12, 3):
        (tag,) = set(tags(crop[None]))
        seen.add(tag)
        src = images[tag]
        if tag != 3:
            h, w = src.shape[:2]
            src = np.pad(src, ((0, 12 - h), (0, 12 - w), (0, 0)), mode="reflect")
        assert window_matches(np.round(crop * 255).astype(np.uint8), [src], 12)
    assert seen == {1, 2, 3}


def test_errors_are_one_line_value_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    tagged_folder(tmp_path / "small", [(10, 10), (12, 6)])
    cases = {
        "no such directory": {"source": tmp_path / "missing"},
        "no images": {"source": tmp_path / "empty"},
        "no image of at least 16×16": {"source": tmp_path / "small", "patch_size": 16},
        "at least 6×6 pixels (after downscale ×2)": {
            "source": {"folder": str(tmp_path / "small")},
            "patch_size": 6,
            "downscale": 2,
        },
        "exactly one of": {"source": {"folder": "a", "tfds_name": "b"}},
        "unknown keys": {"source": {"path": "a"}},
        "multiple of the process count": {
            "source": tmp_path / "small",
            "batch_size": 3,
            "process_count": 2,
        },
        "small_images": {"source": tmp_path / "small", "small_images": "crop"},
        "tfds dataset 'no_such_dataset_xyz': Dataset no_such_dataset_xyz not found": {
            "source": {"tfds_name": "no_such_dataset_xyz"}
        },
    }
    for message, kwargs in cases.items():
        kwargs = {"patch_size": 8, "batch_size": 2, "seed": 0, "process_count": 1,
                  "process_index": 0, **kwargs}  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            data.make_train_dataset(kwargs.pop("source"), **kwargs)
        assert "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("name", ["clic", "div2k", "imagenet2012"])
def test_tfds_mock_data(name):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        stream = data.make_train_iterator(
            {"tfds_name": name, "split": "train"}, patch_size=16, batch_size=4, seed=0,
            process_count=1, process_index=0, small_images="pad", start_step=3,
        )  # fmt: skip
        out = np.stack([next(stream) for _ in range(3)])
    assert out.shape == (3, 4, 16, 16, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and out.std() > 0.05


@pytest.fixture(scope="module")
def tfds_source(tmp_path_factory):
    """A tiny tfds dataset built offline: 11 tagged PNGs, 3 of them under 8 pixels."""
    import tensorflow_datasets as tfds

    sizes = [(9, 12), (6, 20), (16, 10), (11, 11), (30, 8), (5, 5), (20, 20),
             (8, 9), (13, 7), (17, 15), (10, 14)]  # fmt: skip

    class LlicDataTestImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            image = tfds.features.Image(shape=(None, None, 3))
            features = tfds.features.FeaturesDict({"image": image})
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, (h, w) in enumerate(sizes):
                yield i, {"image": tagged(i + 1, h, w)}

    data_dir = tmp_path_factory.mktemp("tfds")
    LlicDataTestImages(data_dir=data_dir).download_and_prepare()
    usable = {i + 1 for i, (h, w) in enumerate(sizes) if min(h, w) >= 8}
    return {"tfds_name": "llic_data_test_images", "data_dir": str(data_dir)}, usable


def test_tfds_resume_equals_uninterrupted_stream(tfds_source):
    source, usable = tfds_source
    kwargs = {"batch_size": 3, "shuffle_buffer": 4}
    fresh = batches(source, 8, **kwargs)
    assert set(tags(fresh)) == usable
    np.testing.assert_array_equal(batches(source, 4, start_step=4, **kwargs), fresh[4:])
    other = batches(source, 8, seed=1, **kwargs)
    assert not np.array_equal(other, fresh)


def test_tfds_process_shards_are_disjoint_and_cover(tfds_source):
    source, usable = tfds_source
    seen = []
    for i in range(2):
        out = tags(batches(source, 8, batch_size=4, process_count=2, process_index=i))
        shard = set(out)
        assert len(set(out[: len(shard)])) == len(shard)  # an epoch holds each once
        seen.append(shard)
    assert not seen[0] & seen[1] and seen[0] | seen[1] == usable


def test_module_imports_without_tensorflow(tmp_path):
    save(tmp_path / "a.png", tagged(1, 8, 8))
    code = (
        "import sys; sys.modules['tensorflow'] = None; "
        "sys.modules['tensorflow_datasets'] = None; "
        "import llic_jax, llic_jax.data as d; "
        f"print(len(d.list_images({str(tmp_path)!r})), d.Source.parse('x').folder)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "x"]


def test_source_parse_accepts_config_dict_like():
    class Config:
        def to_dict(self):
            return {"tfds_name": "div2k", "split": "train[:10]", "image_key": "hr"}

    source = data.Source.parse(Config())
    assert (source.tfds_name, source.split, source.folder) == (
        "div2k",
        "train[:10]",
        None,
    )
    assert data.Source.parse(Path("/x")).folder == "/x"
