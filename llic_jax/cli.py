"""The `llic` command line.

  llic info MODEL [--size HxW]
  llic encode IN.png OUT.llic [--weights W | --quality Q] [--refine STEPS] [--orient]
              [--place] [--refine-lr RATE] [--post-filter F | --no-post-filter]
              [--coarser K] [--quiet]
  llic decode IN.llic OUT.png [--weights W] [--post-filter F]
  llic eval [--weights W ...] --data DIR --out R.json [--entropy-estimation]
            [--refine STEPS] [--refine-lr RATE] [--orient] [--place] [--resume]
            [--post-filter F ... | --no-post-filter] [--coarser K]
  llic bench jpeg|webp|avif --data DIR --out R.json [--qualities 10,20,...]
  llic bdrate ANCHOR.json TEST.json [--method pchip|cubic] [--metric psnr|ms-ssim]
  llic plot R.json ... -o rd.png [--reference DIR]
  llic export (--workdir RUN | --weights W) --out W.safetensors [--float16]

Bad input (unreadable image, corrupt stream, wrong weights) ends with one line on stderr
and exit status 1; outputs are written to a temporary file and renamed, so an existing
file is never left half-written.

The `llic` command keeps XLA's compiled programs on disk (JAX's persistent compilation
cache), so the next command with the same model and image size skips compiling:
`$LLIC_JAX_CACHE_DIR`, by default `$XDG_CACHE_HOME/llic_jax/xla` (`~/.cache/...`;
~1 MB per model and image size, never pruned: delete it at will). `LLIC_JAX_CACHE_DIR=`
(empty) turns it off; a `JAX_COMPILATION_CACHE_DIR` of the user's own is left in charge.
"""

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llic_jax.atomic_write import check_destination, write_atomically
from llic_jax.eval_journal import EvalJournal, journal_path

if TYPE_CHECKING:  # the CLI imports JAX lazily, so that --help and errors are quick
    from llic_jax.coding.latent_refinement import Refinement
    from llic_jax.models.base import CompressionModel
    from llic_jax.post_filter_weights import LoadedPostFilter

__all__ = [
    "console_main",
    "enable_compilation_cache",
    "main",
    "read_image",
    "write_atomically",
]


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as uint8 RGB [H, W, 3].

    Gray and palette images are converted; an alpha channel is dropped only if it is
    fully opaque, otherwise refused; 16-bit and float images are refused.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise CliError(
                    f"{path}: {mode} images (16-bit or float) are not supported"
                )
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                mode = img.mode
            if mode in ("RGBA", "LA", "PA"):
                alpha = np.asarray(img.getchannel("A"))
                if alpha.min() < 255:
                    raise CliError(
                        f"{path}: the image has transparency; flatten it first"
                    )
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CliError(f"{path}: cannot read image ({e})") from None


def _load(weights, quality=None):
    import llic_jax

    if weights is None:
        return llic_jax.load_weights(quality=quality)
    if not Path(weights).is_file():
        raise CliError(f"{weights}: no such file")
    return llic_jax.load_weights(weights)


def _coarseness(args, weights, quality=None) -> int:
    """--coarser if given, else the bundled quality's own (1: 3), else 0."""
    from llic_jax.entropy.coarseness import MAX_COARSENESS
    from llic_jax.weights import bundled_coarseness

    if args.coarser is None:
        return bundled_coarseness(quality) if weights is None else 0
    if not 0 <= args.coarser <= MAX_COARSENESS:
        raise CliError(f"--coarser takes 0..{MAX_COARSENESS}, got {args.coarser}")
    return args.coarser


def _lmbda(args, weights, quality, option: str, coarseness: int = 0) -> float:
    """λ of the RD cost `option` (--refine, --orient, --place) minimises.

    --lmbda if given, else the weights' own (their metadata), over step² at a coarseness
    (entropy/coarseness.py: `coarser_lmbda`).
    """
    from llic_jax.entropy.coarseness import coarser_lmbda
    from llic_jax.weights import bundled_path, read_metadata

    path = weights if weights is not None else bundled_path(quality)
    lmbda = args.lmbda
    if lmbda is None:
        try:
            lmbda = float(read_metadata(path)["lmbda"])
        except (KeyError, ValueError):
            raise CliError(f"{path}: the weights do not record their λ; "
                           f"pass --lmbda for {option}") from None  # fmt: skip
        lmbda = coarser_lmbda(lmbda, coarseness)
    if not lmbda > 0:
        raise CliError(f"--lmbda must be positive, got {lmbda}")
    return lmbda


def _refinement(args, weights, quality=None, coarseness: int = 0):
    """The `Refinement` asked for by --refine (None without it), λ from the weights."""
    if args.refine is None:
        if args.refine_lr is not None:
            raise CliError("--refine-lr sets --refine's step size: give --refine STEPS")
        return None
    from llic_jax import Refinement

    if args.refine < 1:
        raise CliError(f"--refine takes a positive number of steps, got {args.refine}")
    # Refinement checks the step size (a ValueError: one line, exit 1, as main reports)
    settings = {} if args.refine_lr is None else {"learning_rate": args.refine_lr}
    return Refinement(
        _lmbda(args, weights, quality, "--refine", coarseness),
        steps=args.refine,
        **settings,
    )


def _orientation_lmbda(args, weights, quality=None, coarseness=0) -> float | None:
    """λ of --orient's search over the eight orientations (None without --orient)."""
    if not args.orient:
        return None
    return _lmbda(args, weights, quality, "--orient", coarseness)


def _placement_lmbda(args, weights, quality=None, coarseness=0) -> float | None:
    """λ of --place's search over placements in the padded canvas (None without it)."""
    if not args.place:
        return None
    return _lmbda(args, weights, quality, "--place", coarseness)


def _wiener_lmbda(args, weights, quality=None, coarseness=0) -> float | None:
    """λ of the per-image Wiener filter: on by default where λ is known, else None.

    --no-wiener turns it off; weights that do not record their λ (and no --lmbda) code
    without it, since the filter is an option of the encoder, not a need of the stream.
    """
    if args.no_wiener:
        return None
    try:
        return _lmbda(args, weights, quality, "the Wiener filter", coarseness)
    except CliError:
        if args.lmbda is not None:  # a bad --lmbda is an error, not a reason to skip
            raise
        return None


def cmd_info(args) -> None:
    from llic_jax.info import describe

    try:
        height, width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise CliError(f"--size must look like 768x512, got {args.size!r}") from None
    print(describe(args.model, height, width))


def cmd_encode(args) -> None:
    from llic_jax.coding.codec import encode
    from llic_jax.coding.placement import choose_orientation_and_placement

    img = read_image(args.input)
    model, variables = _load(args.weights, args.quality)
    where = (args.weights, args.quality, _coarseness(args, args.weights, args.quality))
    refinement = _refinement(args, *where)
    orientation_lmbda = _orientation_lmbda(args, *where)
    placement_lmbda = _placement_lmbda(args, *where)
    wiener_lmbda = _wiener_lmbda(args, *where)
    coarseness = where[2]
    post_filter = _post_filter(args.post_filter, variables, args.no_post_filter)
    if args.filter_ensemble and post_filter is None:
        raise CliError("--filter-ensemble needs a post-filter: none is bundled for "
                       "these weights (give --post-filter FILE)")  # fmt: skip
    start = time.perf_counter()
    orientation, placement = choose_orientation_and_placement(
        model, variables, img, orientation_lmbda, placement_lmbda, coarseness
    )
    try:
        encoded = encode(
            model,
            variables,
            img,
            refinement=refinement,
            orientation=orientation,
            placement=placement,
            progress=not args.quiet,
            post_filter=post_filter,
            post_filter_ensemble=args.filter_ensemble,
            wiener_lmbda=wiener_lmbda,
            coarseness=coarseness,
        )
    except NotImplementedError as e:  # a model without a relaxed forward
        raise CliError(str(e)) from None
    seconds = time.perf_counter() - start
    blob = encoded.blob
    write_atomically(args.output, lambda tmp: Path(tmp).write_bytes(blob))
    h, w = img.shape[:2]
    turned = f", coarser by {coarseness}" if coarseness else ""
    turned += f", orientation {orientation}" if args.orient else ""
    if placement is not None:
        turned += f", placed at row {placement[0]}, column {placement[1]}"
    if post_filter is not None:
        turned += (
            ", post-filtered" if encoded.post_filtered else ", post-filter not needed"
        )
        turned += " (self-ensemble)" if encoded.post_filter_ensemble else ""
    if encoded.wiener_bytes:
        turned += f", Wiener filter {encoded.wiener_bytes} bytes"
    print(f"{args.output}: {len(blob)} bytes, {8 * len(blob) / (h * w):.4f} bpp "
          f"({w}x{h}, {model.model_name}{turned}, {seconds:.2f} s)")  # fmt: skip


def _bundled_quality_of(blob: bytes, path) -> int:
    """The bundled quality whose weights made `blob` (by the header's fingerprint).

    Raises:
      CliError: no bundled model made it (it needs --weights).
    """
    from llic_jax.coding import container
    from llic_jax.weights import BUNDLED, bundled_path, read_metadata

    wanted = container.unpack(blob)[0].fingerprint.hex()
    for quality in sorted(BUNDLED):
        if read_metadata(bundled_path(quality)).get("fingerprint") == wanted:
            return quality
    raise CliError(f"{path}: not made by a bundled model (weights fingerprint "
                   f"{wanted}); pass the weights that made it with --weights")  # fmt: skip


def cmd_decode(args) -> None:
    from PIL import Image

    import llic_jax

    try:
        blob = Path(args.input).read_bytes()
    except OSError as e:
        raise CliError(f"{args.input}: cannot read ({e.strerror})") from None
    quality = None if args.weights else _bundled_quality_of(blob, args.input)
    model, variables = _load(args.weights, quality)
    post_filter = _post_filter(args.post_filter, variables)
    start = time.perf_counter()
    img = llic_jax.decompress(model, variables, blob, post_filter=post_filter)
    seconds = time.perf_counter() - start
    write_atomically(
        args.output, lambda tmp: Image.fromarray(img).save(tmp, format="PNG")
    )
    print(f"{args.output}: {img.shape[1]}x{img.shape[0]} ({seconds:.2f} s)")


_CONVENTIONS = (
    "bpp = 8 x file bytes (header included) / original pixels; estimated_bpp = "
    "-sum log2 p / pixels of the eval forward; PSNR and MS-SSIM per image on 8-bit RGB, "
    "then averaged; ms-ssim-db-rgb = -10 log10(1 - mean MS-SSIM); times: mean seconds "
    "per image, JIT compilation excluded"
)


@dataclasses.dataclass(frozen=True)
class _EvalRun:
    """One weights file of an `llic eval` and how its images are coded."""

    path: str
    model: "CompressionModel"
    variables: dict
    refinement: "Refinement | None"  # None: no --refine
    orientation_lmbda: float | None  # None: no --orient
    placement_lmbda: float | None  # None: no --place
    wiener_lmbda: float | None  # None: no Wiener filter
    post_filter: "LoadedPostFilter | None"
    coarseness: int  # 0: the weights' own quantisation step

    @property
    def label(self) -> str:
        """The point's label: the weights file, and its coarseness where not 0."""
        name = Path(self.path).name
        return f"{name}, coarser by {self.coarseness}" if self.coarseness else name


def cmd_eval(args) -> None:
    from llic_jax import evaluate, rd_results
    from llic_jax.weights import QUALITIES, bundled_path

    check_destination(args.out)
    if args.refine is not None and args.entropy_estimation:
        raise CliError("--refine needs real coding: drop --entropy-estimation")
    if args.orient and args.entropy_estimation:
        raise CliError("--orient needs real coding: drop --entropy-estimation")
    if args.place and args.entropy_estimation:
        raise CliError("--place needs real coding: drop --entropy-estimation")
    images = evaluate.load_images(args.data)
    # (weights file, the bundled quality or None): a quality brings its own coarseness
    weights = [(path, None) for path in args.weights or []] or [
        (str(bundled_path(q)), q) for q in QUALITIES
    ]
    if args.post_filter and len(args.post_filter) != len(weights):
        raise CliError(f"--post-filter needs one file per weights file ({len(weights)})")
    if args.post_filter and args.entropy_estimation:
        raise CliError("--post-filter needs real coding: drop --entropy-estimation")
    if args.filter_ensemble and (args.entropy_estimation or args.no_post_filter):
        raise CliError("--filter-ensemble needs real coding with a post-filter")
    filters = args.post_filter or [None] * len(weights)
    # Every option checked before the journal starts, so that bad ones leave no journal.
    no_filter = args.no_post_filter or args.entropy_estimation
    runs = []
    for (path, quality), filter_path in zip(weights, filters, strict=True):
        model, variables = _load(path)
        # a bundled quality's λ and coarseness, or a file's own λ (at --coarser)
        where = (None, quality) if quality is not None else (path, None)
        where = (*where, _coarseness(args, *where))
        run = _EvalRun(
            path, model, variables,
            refinement=_refinement(args, *where),
            orientation_lmbda=_orientation_lmbda(args, *where),
            placement_lmbda=_placement_lmbda(args, *where),
            wiener_lmbda=None if args.entropy_estimation else _wiener_lmbda(args, *where),
            post_filter=_post_filter(filter_path, variables, no_filter),
            coarseness=where[2],
        )  # fmt: skip
        if args.filter_ensemble and run.post_filter is None:
            raise CliError(f"--filter-ensemble needs a post-filter: none is bundled "
                           f"for {path} (give --post-filter)")  # fmt: skip
        runs.append(run)
    journal = EvalJournal.start(
        journal_path(args.out), _eval_settings(args, images, runs), args.resume
    )
    points, names = [], set()
    for index, run in enumerate(runs):
        names.add(run.model.model_name)
        save = None
        if args.save_recon is not None:
            stem = Path(run.path).stem
            save = Path(args.save_recon) / (
                f"{stem}-coarser{run.coarseness}" if run.coarseness else stem
            )
        finished = journal.finished(index)
        if finished:
            print(f"{run.label}: {len(finished)} of {len(images)} images "
                  f"from {journal.path}")  # fmt: skip
        try:
            points.append(evaluate.evaluate_model(
                run.model, run.variables, images,
                entropy_estimation=args.entropy_estimation,
                save_recon=save, progress=not args.quiet, label=run.label,
                refinement=run.refinement, orientation_lmbda=run.orientation_lmbda,
                placement_lmbda=run.placement_lmbda, finished=finished, post_filter=run.post_filter,
                post_filter_ensemble=args.filter_ensemble,
                wiener_lmbda=run.wiener_lmbda, coarseness=run.coarseness,
                on_row=lambda row, index=index: journal.record(index, row),
            ))  # fmt: skip
        except KeyboardInterrupt:
            print(f"llic: the finished images are in {journal.path}: the same command "
                  "with --resume goes on from there", file=sys.stderr)  # fmt: skip
            raise
        rows = points[-1]["images"]
        mean = rd_results.summarise_point(rows)
        print(f"{run.label}: {mean['bpp']:.4f} bpp (estimated "
              f"{mean['estimated_bpp']:.4f}), {mean['psnr-rgb']:.2f} dB, MS-SSIM "
              f"{mean.get('ms-ssim-rgb', float('nan')):.4f} over {len(images)} images")  # fmt: skip
        if not args.entropy_estimation:
            exact = sum(row["bit_exact"] for row in rows)
            close = sum(8 * r["bytes"] <= 1.01 * r["estimated_bits"] + 800 for r in rows)
            print(f"  decoded = encoder's reconstruction on {exact}/{len(rows)} images; "
                  f"real within 1% + 100 B of estimated on {close}/{len(rows)}")  # fmt: skip
            if run.post_filter is not None:
                used = sum(row.get("post_filtered", 0) for row in rows)
                line = f"  post-filtered: {used}/{len(rows)} images"
                if args.filter_ensemble:
                    ensembled = sum(row.get("post_filter_ensemble", 0) for row in rows)
                    line += f" ({ensembled} by its self-ensemble)"
                print(line)
            if run.wiener_lmbda is not None:
                sent = [row["wiener_bytes"] for row in rows if row.get("wiener_bytes")]
                print(f"  Wiener filter sent for {len(sent)}/{len(rows)} images"
                      + (f" ({np.mean(sent):.0f} bytes each)" if sent else ""))  # fmt: skip
    mode = "entropy estimation (no coding)" if args.entropy_estimation else "real coding"
    if args.refine is not None:
        # the step size always: its default changed in session 36 (2e-2 → 4e-2)
        lr = runs[0].refinement.learning_rate
        mode += (f", latents refined at encode ({args.refine} steps of stochastic "
                 f"Gumbel annealing, learning rate {lr:g})")  # fmt: skip
    if args.orient:
        mode += ", each image coded in the cheapest of its 8 orientations"
    if args.place:
        mode += (", at the cheapest of up to 25 placements in its padded canvas "
                 "(rows: placement)")  # fmt: skip
    else:
        mode += ", centred in its padded canvas"
    if any(run.post_filter is not None for run in runs):
        mode += ", decoder-side post-filter where it helps (rows: post_filtered)"
        if args.filter_ensemble:
            mode += (", or its 8-orientation self-ensemble where that helps more "
                     "(rows: post_filter_ensemble)")  # fmt: skip
            if args.refine is not None:  # since session 37
                mode += ("; the refinement serves the self-ensemble: step i filters the "
                         "image turned to orientation i mod 8")  # fmt: skip
    # A coarseness is the point's own: its label says it ("…, coarser by k"), so that
    # points at k > 0 merge (`llic merge`) with those of the weights' own step.
    if any(run.wiener_lmbda is not None for run in runs):
        mode += (", then a per-image Wiener filter where it lowers bpp + λ·MSE (rows: "
                 "wiener_bytes, counted in estimated_bits as sent)")  # fmt: skip
    description = f"llic_jax {mode} on {args.data}; {_CONVENTIONS}"
    name = args.name or "+".join(sorted(names))
    rd_results.write_json(args.out, rd_results.curve(name, description, points))
    journal.remove()
    print(f"wrote {args.out}")


def _eval_settings(args, images, runs) -> dict:
    """What makes an `llic eval` run's rows reusable by another (eval_journal.py).

    The pixels of every image, each weights file's fingerprint, the refinement's whole
    schedule (its defaults may change between versions), the container version and
    where images sit in the padded canvas (corner before session 31, centred since).
    """
    import hashlib

    from llic_jax.coding.codec import fingerprint
    from llic_jax.coding.container import FORMAT_VERSION

    refinements = [run.refinement for run in runs]
    wieners = [run.wiener_lmbda for run in runs]
    filters = [run.post_filter for run in runs]
    settings = {
        "data": str(Path(args.data).resolve()),
        "images": {
            name: hashlib.blake2b(img.tobytes(), digest_size=8).hexdigest()
            for name, img in images
        },
        "weights": [fingerprint(run.variables).hex() for run in runs],
        "entropy_estimation": args.entropy_estimation,
        "container_version": FORMAT_VERSION,
        "refinement": [None if r is None else dataclasses.asdict(r) for r in refinements],
        "orientation_lmbda": [run.orientation_lmbda for run in runs],
        # always present: journals of corner-placed rows must not be resumed
        "placement": "centred",
    }
    if any(run.placement_lmbda is not None for run in runs):
        settings["placement_lmbda"] = [run.placement_lmbda for run in runs]
    # Keys only where set, so that runs without them still resume journals of versions
    # from before the post-filter and its ensemble.
    if any(f is not None for f in filters):
        settings["post_filter"] = [None if f is None else f.digest() for f in filters]
    if args.filter_ensemble:
        settings["post_filter_ensemble"] = True
        if any(r is not None for r in refinements):  # refined for the ensemble since 37
            settings["refinement_target"] = "post-filter ensemble"
    if any(v is not None for v in wieners):
        settings["wiener_lmbda"] = wieners
    if any(run.coarseness for run in runs):
        settings["coarseness"] = [run.coarseness for run in runs]
    return settings


def cmd_bench(args) -> None:
    from llic_jax import classic_codecs, evaluate, rd_results

    check_destination(args.out)
    if args.qualities:
        try:
            qualities = [int(q) for q in args.qualities.split(",")]
        except ValueError:
            raise CliError(
                f"--qualities must be integers, got {args.qualities!r}"
            ) from None
    else:
        qualities = classic_codecs.default_qualities(args.codec)
    classic_codecs.check_supported(args.codec, args.subsampling)
    images = evaluate.load_images(args.data)
    points = [
        evaluate.evaluate_classic(args.codec, images, q, args.subsampling, not args.quiet)
        for q in qualities
    ]
    name = classic_codecs.describe(args.codec, args.subsampling)
    description = f"{name} on {args.data}; {_CONVENTIONS}"
    document = rd_results.curve(name, description, points)
    rd_results.write_json(args.out, document)
    for bpp, value in zip(document["results"]["bpp"], document["results"]["psnr-rgb"],
                          strict=True):  # fmt: skip
        print(f"  {bpp:.4f} bpp  {value:.2f} dB")
    print(f"wrote {args.out}")


def cmd_bdrate(args) -> None:
    from llic_jax import bjontegaard, rd_results

    anchor, test = rd_results.load_curve(args.anchor), rd_results.load_curve(args.test)
    key = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-db-rgb"}[args.metric]
    for curve, path in ((anchor, args.anchor), (test, args.test)):
        if key not in curve["results"]:
            raise CliError(f"{path}: no {key} in the results")
    a, t = anchor["results"], test["results"]
    unit = "PSNR" if args.metric == "psnr" else "MS-SSIM"
    per_image = None
    if args.per_image:  # checked first: refused files print nothing
        from llic_jax.per_image_rd import compare_per_image

        try:
            per_image = compare_per_image(anchor, test, args.metric, args.method)
        except ValueError as e:
            raise CliError(str(e)) from None
    try:
        at_rate = bjontegaard.quality_at_rate(a["bpp"], a[key], t["bpp"], args.method)
        if len(t["bpp"]) >= bjontegaard.MIN_POINTS[args.method]:
            rate = bjontegaard.bd_rate(a["bpp"], a[key], t["bpp"], t[key], args.method)
            quality = bjontegaard.bd_psnr(a["bpp"], a[key], t["bpp"], t[key], args.method)
            print(f"{test['name']} vs {anchor['name']} ({args.metric}, {args.method}): "
                  f"BD-rate {rate:+.2f}%, BD-{unit} {quality:+.3f} dB")  # fmt: skip
        else:
            print(f"{test['name']} vs {anchor['name']} ({args.metric}, {args.method}): "
                  f"{len(t['bpp'])} point(s), too few for BD figures")  # fmt: skip
    except ValueError as e:
        raise CliError(str(e)) from None
    # Each test point against the anchor's fit at its rate: how single points compare.
    for bpp, ours, theirs in zip(t["bpp"], t[key], at_rate, strict=True):
        if np.isnan(theirs):
            versus = "outside the anchor's rates"
        else:
            versus = f"anchor {theirs:.2f} dB there, {ours - theirs:+.2f} dB"
        print(f"  {bpp:.4f} bpp: {ours:.2f} dB; {versus}")
    if per_image is not None:
        _print_per_image(per_image, test, unit)


def _print_per_image(rows: list[dict], test: dict, unit: str) -> None:
    """Each photo's BD figures and gaps (per_image_rd.py), the test's worst first."""
    rates = ", ".join(f"{bpp:.4f}" for bpp in test["results"]["bpp"])
    print(f"per image, worst first: BD-rate, BD-{unit} (dB), then {unit} minus the "
          f"anchor's fit for that photo at each test point's rate (mean bpp {rates}), "
          "and their mean")  # fmt: skip
    width = max(len(row["image"]) for row in rows)

    def number(value, spec):
        return "–" if value is None else format(value, spec)

    for row in rows:
        gaps = " ".join(f"{number(g, '+.2f'):>6}" for g in row["gaps"])
        print(f"  {row['image']:<{width}}  {number(row['bd_rate'], '+.2f'):>8}%  "
              f"{number(row['bd_quality'], '+.3f'):>7}  {gaps}  "
              f"{number(row['mean_gap'], '+.2f'):>6}")  # fmt: skip


def cmd_plot(args) -> None:
    from llic_jax import rd_plot, rd_results

    check_destination(args.output)
    curves = [rd_results.load_curve(p) for p in args.results]
    references = []
    if args.reference:
        folder = Path(args.reference)
        if not folder.is_dir():
            raise CliError(f"{folder}: no such directory")
        references = [rd_results.load_curve(p) for p in sorted(folder.glob("*.json"))]
    max_bpp = args.max_bpp if args.max_bpp > 0 else None
    rd_plot.plot_curves(curves, args.output, references, args.title, max_bpp)
    print(f"wrote {args.output}")


def cmd_merge(args) -> None:
    from llic_jax import rd_results

    check_destination(args.out)
    documents = [rd_results.load_curve(path) for path in args.results]
    merged = rd_results.merge_curves(args.name, documents)
    rd_results.write_json(args.out, merged)
    rates = ", ".join(f"{bpp:.4f}" for bpp in merged["results"]["bpp"])
    print(f"wrote {args.out}: {len(merged['results']['bpp'])} points ({rates} bpp)")


def cmd_export(args) -> None:
    from llic_jax import export

    check_destination(args.out)
    if args.workdir:
        model, params, metadata = export.load_workdir(args.workdir)
    else:
        from llic_jax.weights import read_metadata

        model, variables = _load(args.weights)
        params = variables["params"]
        metadata = {k: v for k, v in read_metadata(args.weights).items()
                    if k not in ("format", "version", "model", "fingerprint")}  # fmt: skip
    export.export_weights(
        args.out, model, params, float16=args.float16, metadata=metadata
    )
    size = Path(args.out).stat().st_size / 1e6
    print(f"{args.out}: {model.model_name}, {size:.1f} MB"
          + (" (float16 parameters)" if args.float16 else ""))  # fmt: skip


def _add_refine_arguments(parser: argparse.ArgumentParser) -> None:
    """--refine STEPS, --orient, --place, --lmbda and --coarser: encode's and eval's."""
    parser.add_argument(
        "--refine",
        type=int,
        metavar="STEPS",
        help="optimise each image's latents for STEPS gradient steps before coding "
        "(slower encoding, same decoder; see llic_jax/coding/latent_refinement.py)",
    )
    parser.add_argument(
        "--refine-lr",
        type=float,
        metavar="RATE",
        help="--refine's initial step size (Adam, cosine decay to 0; default 0.04; "
        "curves before session 36 were refined at 0.02)",
    )
    parser.add_argument(
        "--orient",
        action="store_true",
        help="code each image in whichever of its 8 rotations/mirrors has the lowest "
        "estimated RD cost (8 eval forwards more; same decoder; see "
        "llic_jax/coding/orientation.py)",
    )
    parser.add_argument(
        "--place",
        action="store_true",
        help="code each image (after --orient's choice) at whichever of up to 25 "
        "placements in its padded canvas has the lowest estimated RD cost (default: "
        "centred; up to 25 eval forwards more; same decoder; see "
        "llic_jax/coding/placement.py)",
    )
    parser.add_argument(
        "--lmbda",
        type=float,
        help="λ of the RD cost bpp + λ·MSE(0-255) that --refine, --orient and --place "
        "minimise (default: the weights')",
    )
    parser.add_argument(
        "--coarser",
        type=int,
        metavar="K",
        help="quantise the latents K steps coarser than the weights were trained for "
        "(step 1.131**K, 0..15): a lower rate from the same weights (default 0; "
        "--quality 1: 3); --refine, --orient, --place and the Wiener filter then use "
        "the weights' λ / step² (see llic_jax/entropy/coarseness.py)",
    )


def _add_wiener_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-wiener",
        action="store_true",
        help="do not fit and send a per-image Wiener filter (by default the encoder "
        "sends one, ~100 bytes, where it lowers bpp + λ·MSE at the weights' λ or "
        "--lmbda; see llic_jax/coding/wiener_filter.py)",
    )


def _add_post_filter_arguments(parser, help_text: str, nargs=None) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--post-filter", nargs=nargs, help=help_text)
    group.add_argument("--no-post-filter", action="store_true",
                       help="code without a post-filter (streams any decoder reads)")  # fmt: skip
    parser.add_argument(
        "--filter-ensemble",
        action="store_true",
        help="also try the post-filter's self-ensemble (its mean over the image's 8 "
        "orientations; ~+0.03 dB where chosen, 8 filter passes in the decoder too; see "
        "llic_jax/layers/post_filter.py); with --refine the latents are refined for it",
    )


def _post_filter(path, variables, disabled: bool = False):
    """The post-filter for `variables`: the file at `path`, else the bundled one, else None.

    Raises:
      WeightsError: the file is not a post-filter.
      CliError: it was trained for other weights.
    """
    from llic_jax.coding.codec import fingerprint
    from llic_jax.post_filter_weights import bundled_post_filter, load_post_filter

    if disabled:
        return None
    if path is None:
        return bundled_post_filter(fingerprint(variables))
    post_filter = load_post_filter(path)  # WeightsError: main's one-line report
    if post_filter.codec_fingerprint != fingerprint(variables):
        raise CliError(f"{path}: a post-filter trained for other weights")
    return post_filter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llic", description="LLIC image codec (JAX).")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="parameters, kMAC/pixel and latent layout")
    info.add_argument("model")
    info.add_argument("--size", default="768x512", help="image size HxW for kMAC/pixel")
    info.set_defaults(run=cmd_info)
    enc = sub.add_parser("encode", help="compress an image to a .llic file")
    enc.add_argument("input")
    enc.add_argument("output")
    enc.add_argument("--weights", help="weights file (default: a bundled model)")
    enc.add_argument(
        "--quality",
        type=int,
        help="bundled model quality, 1-4 (default: 3; 1 is 2's weights coarser by 3)",
    )
    enc.add_argument(
        "--quiet", action="store_true", help="no progress bar for --refine's steps"
    )
    _add_refine_arguments(enc)
    _add_post_filter_arguments(enc, "a post-filter file (default: the bundled one "
                               "trained for the weights, if any)")  # fmt: skip
    _add_wiener_argument(enc)
    enc.set_defaults(run=cmd_encode)
    dec = sub.add_parser("decode", help="decompress a .llic file to PNG")
    dec.add_argument("input")
    dec.add_argument("output")
    dec.add_argument(
        "--weights", help="weights file (default: the bundled model the stream names)"
    )
    dec.add_argument("--post-filter", help="the post-filter file of the weights, for "
                     "streams that use one (default: the bundled one)")  # fmt: skip
    dec.set_defaults(run=cmd_decode)

    ev = sub.add_parser("eval", help="RD point(s) of weights files over a folder")
    ev.add_argument(
        "--weights", nargs="+", help="weights files (default: bundled models)"
    )
    ev.add_argument("--data", required=True, help="folder of images")
    ev.add_argument("--out", required=True, help="results JSON (CompressAI schema)")
    ev.add_argument("--name", help="curve name (default: the model names)")
    ev.add_argument("--entropy-estimation", action="store_true",
                    help="skip the coder; report the estimated rate only")  # fmt: skip
    ev.add_argument("--save-recon", help="write decoded PNGs under DIR/<weights>/")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument(
        "--resume",
        action="store_true",
        help="go on with an interrupted run of the same command: reuse the images "
        "finished in OUT.partial (kept while a run is in progress)",
    )
    _add_refine_arguments(ev)
    _add_post_filter_arguments(ev, "post-filter files, one per weights file (default: "
                               "the bundled one of each, if any)", nargs="+")  # fmt: skip
    _add_wiener_argument(ev)
    ev.set_defaults(run=cmd_eval)

    bench = sub.add_parser("bench", help="RD curve of a classic codec (Pillow)")
    bench.add_argument("codec", choices=("jpeg", "webp", "avif"))
    bench.add_argument("--data", required=True, help="folder of images")
    bench.add_argument("--out", required=True, help="results JSON")
    bench.add_argument("--qualities", help="comma-separated quality settings")
    bench.add_argument("--subsampling", choices=("420", "444"), default="420")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(run=cmd_bench)

    bd = sub.add_parser("bdrate", help="Bjøntegaard delta rate / PSNR of two curves")
    bd.add_argument("anchor")
    bd.add_argument("test")
    bd.add_argument("--method", choices=("pchip", "cubic"), default="pchip")
    bd.add_argument("--metric", choices=("psnr", "ms-ssim"), default="psnr")
    bd.add_argument("--per-image", action="store_true",
                    help="also compare each photo's curves (files of llic eval / "
                    "bench): where the test wins and loses")  # fmt: skip
    bd.set_defaults(run=cmd_bdrate)

    plot = sub.add_parser("plot", help="PSNR and MS-SSIM vs bpp, one PNG")
    plot.add_argument("results", nargs="+", help="results JSON files")
    plot.add_argument("-o", "--output", required=True, help="image file (.png)")
    plot.add_argument("--reference", help="folder of reference curves (dashed)")
    plot.add_argument("--title", default="")
    plot.add_argument("--max-bpp", type=float, default=2.0,
                      help="crop the rate axis here (0: no limit)")  # fmt: skip
    plot.set_defaults(run=cmd_plot)

    merge = sub.add_parser(
        "merge", help="RD points of several results files as one curve"
    )
    merge.add_argument("results", nargs="+",
                       help="results JSON files of the same settings (llic eval runs "
                       "split by weights file, or CompressAI files)")  # fmt: skip
    merge.add_argument("--out", required=True, help="results JSON to write")
    merge.add_argument("--name", required=True, help="the curve's name")
    merge.set_defaults(run=cmd_merge)

    ex = sub.add_parser("export", help="training state → weights file with tables")
    source = ex.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="training workdir (latest state)")
    source.add_argument("--weights", help="an existing weights file")
    ex.add_argument("--out", required=True, help="weights file to write")
    ex.add_argument("--float16", action="store_true", help="store parameters as float16")
    ex.set_defaults(run=cmd_export)
    return parser


def enable_compilation_cache(environ=os.environ) -> str | None:
    """Turns on JAX's persistent compilation cache for this process (module docstring).

    Call before anything is compiled. Returns the cache directory, None when it is off.
    """
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return environ["JAX_COMPILATION_CACHE_DIR"]  # JAX reads it itself
    if "LLIC_JAX_CACHE_DIR" in environ:
        directory = environ["LLIC_JAX_CACHE_DIR"]
    else:
        cache_home = environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        directory = os.path.join(cache_home, "llic_jax", "xla")
    if not directory:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    # A command compiles dozens of small programs besides the model; keep them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory


def console_main() -> int:
    """Entry point of the `llic` console script: `main` with the compilation cache."""
    enable_compilation_cache()
    return main()


def main(argv=None) -> int:
    """Runs one `llic` command (`argv` as sys.argv[1:]); returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    from llic_jax.coding.container import BitstreamError
    from llic_jax.weights import WeightsError

    try:
        args.run(args)
    except (CliError, BitstreamError, WeightsError, ValueError, OSError) as e:
        print(f"llic: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("llic: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(console_main())
