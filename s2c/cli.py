"""The `s2c` command line.

Every command prints errors as one line, `error: <what is wrong, and where>`, and exits with 2 for
bad input or unsupported models and 1 for a bug in s2c; `--debug` shows the traceback instead.
Files are written atomically: an output file appears complete or not at all.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

import click

from ir.errors import InputError, S2CError
from passes.pipeline import pass_names

MACHINE_HELP = (
    "Target machine: chip (1 chip), board (one 48-chip board, the default), NxM-boards "
    "(N columns by M rows of boards, e.g. 2x2-boards), auto (the smallest of those that fits), "
    "or a JSON machine description file."
)


class S2CGroup(click.Group):
    """Runs a command and turns S2CError, interrupts and bugs into one-line errors."""

    def main(self, args=None, *more, **options):
        """click's main; when it runs the process (it reads sys.argv and exits), a Ctrl-C that
        comes once the command is over is ignored: during Python's teardown it would kill the
        process with no message and exit status -2, after the work was done and every file
        written."""
        try:
            return super().main(args, *more, **options)
        finally:
            exiting = args is None and not more and options.get("standalone_mode", True)
            if exiting and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except S2CError as error:
            _fail(ctx, str(error), error.exit_code, error)
        except KeyboardInterrupt:
            click.echo(f"error: interrupted; {_written_message(ctx)}", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except MemoryError as error:
            _fail(ctx, "out of memory", 1, error)
        except Exception as error:  # a bug: say so, in one line
            _fail(
                ctx,
                f"internal error (a bug in s2c, please report it): {type(error).__name__}: {error}",
                1,
                error,
            )


def _written_message(ctx: click.Context) -> str:
    outputs = (ctx.obj or {}).get("outputs", [])
    written = [str(path) for path, before in outputs if _identity(path) not in (None, before)]
    if not written:
        return "no output file was written"
    verb = "was" if len(written) == 1 else "were"
    return f"only {', '.join(written)} {verb} written, in full"


def _fail(ctx: click.Context, message: str, code: int, error: BaseException) -> None:
    if ctx.obj and ctx.obj.get("debug"):
        traceback.print_exception(type(error), error, error.__traceback__)
    first = message.splitlines()[0] if message else type(error).__name__
    click.echo(f"error: {first}", err=True)
    ctx.exit(code)


@click.group(cls=S2CGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.version_option(package_name="s2c")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """s2c compiles ONNX models to SpiNNaker2 memory images and runs them bit-exactly."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def compile_options(function):
    """The options that decide the image, shared by compile and validate."""
    options = [
        click.option(
            "--mode",
            type=click.Choice(["float", "int8", "snn"]),
            default="int8",
            show_default=True,
            help="Numerics: int8 quantises weights and activations and runs conv/dense on the "
            "MAC arrays (give --calib); float runs fp32 kernels on the ARM cores "
            "(docs/numerics.md); snn converts a ReLU network to integrate-and-fire neurons run "
            "for --timesteps steps (give --calib; docs/snn.md).",
        ),
        click.option(
            "--prune",
            type=float,
            default=0.0,
            show_default=True,
            metavar="FRACTION",
            help="Zero this fraction (in [0, 1)) of each conv/dense layer's weights, smallest "
            "magnitude first; the first and last such layers are kept whole (docs/sparsity.md).",
        ),
        click.option(
            "--prune-global",
            is_flag=True,
            help="--prune ranks the weights of all layers together instead of per layer.",
        ),
        click.option(
            "--prune-first-last",
            is_flag=True,
            help="--prune the first and last conv/dense layers too.",
        ),
        click.option(
            "--prune-correction",
            type=click.Choice(["refit", "bias", "none"]),
            default="refit",
            show_default=True,
            help="After --prune, fit each pruned layer to its unpruned output on the --calib "
            "samples: refit = least-squares kept weights and bias, bias = shift the bias by "
            "the mean removed, none = magnitude pruning only (also without --calib).",
        ),
        click.option(
            "--sparse-weights/--dense-weights",
            default=True,
            show_default=True,
            help="Store a slice's sparse weight as compressed rows of non-zeros when that is "
            "smaller (docs/image-format.md); --dense-weights always stores it whole.",
        ),
        click.option(
            "--event-activations/--no-event-activations",
            default=None,
            help="int8/float: every layer sends only its non-zero activations, one packet (key "
            "of the element, value) each, and a receiving dense kernel processes only the rows "
            "of inputs that arrived; --no-event-activations: every layer sends all its values "
            "packed (16 int8 or 4 float32 per packet). Neither: per layer, events where the "
            "zeros measured at calibration make them fewer packets (over 15/16 zeros in int8, "
            "3/4 in float; packed without calibration data; docs/sparsity.md).",
        ),
        click.option(
            "--timesteps",
            type=int,
            default=32,
            show_default=True,
            metavar="T",
            help="snn: timesteps per inference (1..4096).",
        ),
        click.option(
            "--snn-percentile",
            type=float,
            default=99.9,
            show_default=True,
            help="snn: a neuron's threshold is this percentile of its channel's calibration "
            "activations.",
        ),
        click.option(
            "--snn-per-layer",
            is_flag=True,
            help="snn: one threshold per layer instead of one per channel.",
        ),
        click.option(
            "--snn-bias-correction",
            is_flag=True,
            help="snn: add to each layer's bias the mean current that clipping its inputs at "
            "their thresholds removes (from the calibration data).",
        ),
        click.option(
            "--snn-encoding",
            type=click.Choice(["current", "poisson"]),
            default="current",
            show_default=True,
            help="snn: the input as a constant current into the first layer, or as Poisson "
            "spikes from a seeded PCG64 generator (non-negative inputs only).",
        ),
        click.option(
            "--snn-seed",
            type=int,
            default=0,
            show_default=True,
            help="snn: seed of the Poisson input generator, stored in the image.",
        ),
        click.option(
            "--calib",
            type=click.Path(dir_okay=False),
            default=None,
            help="int8, snn: .npz of calibration inputs keyed by input name, samples along "
            "axis 0 (int8 default: seeded random inputs, with a warning; snn: required).",
        ),
        click.option(
            "--calib-method",
            type=click.Choice(["minmax", "percentile", "mse"]),
            default="minmax",
            show_default=True,
            help="int8: how each activation's range is chosen from the calibration data.",
        ),
        click.option(
            "--percentile",
            type=float,
            default=99.99,
            show_default=True,
            help="int8: the percentile kept by --calib-method percentile.",
        ),
        click.option(
            "--per-tensor-weights",
            is_flag=True,
            help="int8: one weight scale per tensor instead of per output channel.",
        ),
        click.option("--machine", default="board", show_default=True, help=MACHINE_HELP),
        click.option(
            "--placer",
            type=click.Choice(["greedy", "cpsat"]),
            default="cpsat",
            show_default=True,
            help="Placement: cpsat minimises packets x hops between chips with OR-Tools CP-SAT "
            "(greedy is its hint and fallback); greedy fills PEs in raster order.",
        ),
        click.option(
            "--place-time",
            type=float,
            default=10.0,
            show_default=True,
            metavar="S",
            help="cpsat: deterministic time limit in seconds of solver work (same result on "
            "any machine; wall time is a few times larger).",
        ),
        click.option(
            "--chip-weight",
            type=float,
            default=0.0,
            show_default=True,
            metavar="W",
            help="cpsat: what one more chip costs, in packets x hops per inference.",
        ),
        click.option(
            "--batch",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Size bound to a dynamic batch axis.",
        ),
        click.option("--dump-ir", is_flag=True, help="Print the IR after the passes."),
        click.option(
            "--print-after",
            multiple=True,
            metavar="PASS",
            help=f"Print the IR after PASS (repeatable; 'all' for every pass). "
            f"Passes: {', '.join(pass_names())}.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _options(options: dict):
    """CompileOptions from the shared compile options of a command."""
    from s2c.driver import CompileOptions

    values = dict(options)
    values["print_after"] = tuple(values.get("print_after", ()))
    return CompileOptions(**values)


def _check_output_path(output: Path, model: Path, option: str = "-o", what: str = "model") -> None:
    """Refuse an output path that names an input file (also through a link)."""
    if output.exists() and model.exists() and os.path.samefile(output, model):
        raise InputError(f"{option} {output} would overwrite the input {what}")


def _check_distinct(first: Path | None, second: Path | None, options: str) -> None:
    """Refuse two outputs that name the same file: the second would replace the first."""
    if first is None or second is None:
        return
    same = first.resolve() == second.resolve()
    if same or (first.exists() and second.exists() and os.path.samefile(first, second)):
        raise InputError(f"{options} both name {second}; give them different files")


def _will_write(path: Path) -> None:
    """Note an output file about to be written, with the file it replaces (if any).

    After an interrupt, a noted file whose identity changed was written in full (writes are
    temporary file + rename), however late the interrupt came; the message names it.
    """
    context = click.get_current_context().find_root()
    context.ensure_object(dict).setdefault("outputs", []).append((path, _identity(path)))


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_mtime_ns


@main.command("compile")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Image file to write (default: MODEL with .bin).",
)
@compile_options
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@click.option(
    "--emit-qdq",
    type=click.Path(dir_okay=False, path_type=Path),
    help="int8: also write the quantised graph as an ONNX model onnxruntime runs (QDQ, with "
    "integer ops where the image computes in integers; docs/numerics.md).",
)
def compile_command(model, output, quiet, emit_qdq, **options):
    """Compile MODEL.onnx into a SpiNNaker2 memory image."""
    from backend.image import write_image
    from s2c.driver import compile_model
    from s2c.summary import format_summary, summarise

    output = output or model.with_suffix(".bin")
    _check_output_path(output, model)
    if emit_qdq is not None:
        _check_output_path(emit_qdq, model, "--emit-qdq")
        _check_distinct(output, emit_qdq, "-o and --emit-qdq")
        if options["mode"] != "int8":
            raise InputError("--emit-qdq needs --mode int8")
    from backend.cost import estimate
    from s2c.progress import terminal_progress
    from s2c.summary import format_estimate

    warn = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    progress = terminal_progress(quiet)
    result = compile_model(model, _options(options), emit=click.echo, warn=warn, progress=progress)
    progress.done()
    _will_write(output)
    size = write_image(result.program, output)
    if emit_qdq is not None:
        from s2c.export import export_onnx
        from s2c.files import atomic_write_bytes

        _will_write(emit_qdq)
        atomic_write_bytes(emit_qdq, export_onnx(result.graph).SerializeToString())
    if not quiet:
        click.echo(f"wrote {output} ({size} bytes)")
        if emit_qdq is not None:
            click.echo(f"wrote {emit_qdq} (the quantised graph as a QDQ model)")
        click.echo(format_summary(summarise(result.program, size)))
        click.echo(format_estimate(estimate(result.program)))


@main.command("run")
@click.argument("image", type=click.Path(path_type=Path))
@click.option(
    "--inputs",
    "inputs_path",
    type=click.Path(path_type=Path),
    help=".npz of inputs keyed by input name (default: seeded random inputs).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help=".npz to write outputs to (keyed by output name).",
)
@click.option("--stats", is_flag=True, help="Print packets, link hops and MACs.")
@click.option("--stats-json", type=click.Path(path_type=Path), help="Write run statistics here.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="BLAS threads for the matrix products. More help large models on an idle machine; "
    "on a busy one, waiting BLAS threads spin and slow the run down.",
)
def run_command(image, inputs_path, output, stats, stats_json, threads):
    """Run IMAGE in the reference interpreter."""
    from s2c.files import atomic_write_bytes, read_npz, write_npz
    from s2c.validate import interpreter_outputs, seeded_inputs

    for path, option in ((output, "-o"), (stats_json, "--stats-json")):
        if path is not None:
            _check_output_path(path, image, option, "image")
            if inputs_path is not None:
                _check_output_path(path, inputs_path, option, "inputs file")
    _check_distinct(output, stats_json, "-o and --stats-json")
    data = _read_image_bytes(image)
    if inputs_path is None:
        from backend.image import decode_image

        arrays = seeded_inputs(decode_image(data).inputs)
    else:
        arrays = read_npz(inputs_path)
    from s2c.progress import terminal_progress

    progress = terminal_progress()
    wanted = stats or stats_json is not None  # value-dependent counts only when asked for
    outputs, run_stats = interpreter_outputs(
        data, arrays, progress, activity=wanted, threads=threads
    )
    progress.done()
    if output is not None:
        _will_write(output)
        write_npz(output, outputs)
        click.echo(f"wrote {output}")
    else:
        for name, array in outputs.items():
            click.echo(f"{name}: shape {tuple(array.shape)} {array.dtype}")
            click.echo(f"  {_preview(array)}")
    if stats:
        counts = run_stats.as_dict()
        click.echo(" ".join(f"{k}={v}" for k, v in counts.items() if not isinstance(v, dict)))
    if stats_json is not None:
        _will_write(stats_json)
        atomic_write_bytes(stats_json, json.dumps(run_stats.as_dict(), indent=2).encode())


def _preview(array) -> str:
    import numpy as np

    flat = np.asarray(array).reshape(-1)
    text = np.array2string(flat[:8], precision=5, separator=", ")
    return text + (" ..." if flat.size > 8 else "")


def _read_image_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None


@main.command("validate")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--inputs",
    "inputs_path",
    type=click.Path(path_type=Path),
    help=".npz of inputs keyed by input name (default: seeded random inputs).",
)
@compile_options
@click.option("--rtol", type=float, default=None, help="Relative tolerance (default 1e-4).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance (default 1e-5).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.pass_context
def validate_command(ctx, model, inputs_path, rtol, atol, as_json, **options):
    """Compile MODEL, run it in the interpreter and compare with onnxruntime.

    int8 (the default): against the --emit-qdq model (exit 0 when >= 99.5 % of output elements
    are within 1 LSB and none is beyond 2) and, for information, against the fp32 model. A
    model with GRU / LSTM layers has no QDQ model: exit 0 when its outputs keep a mean cosine
    similarity >= 0.99 with fp32 and the same top-1 class on >= 95 % of the samples.
    float: against the fp32 model; exits 0 only when every element is within tolerance.
    """
    from s2c.files import read_npz
    from s2c.validate import DEFAULT_ATOL, DEFAULT_RTOL, validate

    arrays = read_npz(inputs_path) if inputs_path is not None else None
    if options["mode"] == "int8":
        ctx.exit(_validate_int8(model, arrays, options, as_json))
    if options["mode"] == "snn":
        ctx.exit(_validate_snn(model, arrays, options, as_json))
    rtol = DEFAULT_RTOL if rtol is None else rtol
    atol = DEFAULT_ATOL if atol is None else atol
    results = validate(model, _options(options), arrays, rtol, atol)
    ok = all(r.ok for r in results)
    if as_json:
        click.echo(
            json.dumps(
                {"ok": ok, "rtol": rtol, "atol": atol, "outputs": [r.as_dict() for r in results]},
                indent=2,
            )
        )
    else:
        for r in results:
            verdict = "ok" if r.ok else f"FAIL ({r.mismatched} of {r.elements} outside tolerance)"
            click.echo(
                f"{r.name}: max abs error {r.max_abs_error:.3g}, "
                f"max rel error {r.max_rel_error:.3g}: {verdict}"
            )
        click.echo(f"{'PASS' if ok else 'FAIL'} (rtol {rtol}, atol {atol}, against onnxruntime)")
    ctx.exit(0 if ok else 1)


def _validate_int8(model, arrays, options, as_json) -> int:
    """Print both int8 comparisons; 0 when the QDQ agreement meets the acceptance figures."""
    from s2c.validate import validate_int8

    warn = lambda text: click.echo(text, err=True)  # noqa: E731
    report = validate_int8(model, _options(options), arrays, warn=warn)
    if as_json:
        figures = {
            "ok": report.ok,
            "against_qdq": [c.as_dict() for c in report.qdq],
            "against_fp32": [c.as_dict() for c in report.fp32],
        }
        if report.cosine:
            figures["cosine_against_fp32"] = [c.as_dict() for c in report.cosine]
        click.echo(json.dumps(figures, indent=2))
        return 0 if report.ok else 1
    for c in report.qdq:
        click.echo(
            f"{c.name}: against the QDQ model: {100 * c.fraction_within_one:.2f} % of "
            f"{c.elements} within 1 LSB, max {c.max_steps} LSB"
        )
    for c in report.fp32:
        click.echo(f"{c.name}: against the fp32 model: max abs error {c.max_abs_error:.3g}")
    for c in report.cosine:
        click.echo(
            f"{c.name}: against the fp32 model: cosine similarity {c.mean_cosine:.5f} on "
            f"average (smallest {c.min_cosine:.5f}), top-1 agrees on {c.agreeing} of "
            f"{c.samples} samples"
        )
    click.echo(f"{'PASS' if report.ok else 'FAIL'} ({_int8_criterion(report)})")
    return 0 if report.ok else 1


def _int8_criterion(report) -> str:
    from s2c.validate import (
        FP32_MIN_AGREEMENT,
        FP32_MIN_COSINE,
        QDQ_MAX_STEPS,
        QDQ_MIN_FRACTION,
    )

    if report.cosine:
        return (
            f"int8 with recurrent layers, which no QDQ model expresses: mean cosine similarity "
            f">= {FP32_MIN_COSINE:g} and top-1 agreement >= {100 * FP32_MIN_AGREEMENT:g} % "
            f"against the fp32 model"
        )
    return (
        f"int8: >= {100 * QDQ_MIN_FRACTION:g} % within 1 LSB of the QDQ model, "
        f"none beyond {QDQ_MAX_STEPS} LSB"
    )


def _validate_snn(model, arrays, options, as_json) -> int:
    """Top-1 agreement of the spiking network with the fp32 model; 0 when it meets the bar."""
    from s2c.validate import SNN_MIN_AGREEMENT, validate_snn

    results = validate_snn(model, _options(options), arrays)
    ok = all(r.ok for r in results)
    if as_json:
        click.echo(json.dumps({"ok": ok, "outputs": [r.as_dict() for r in results]}, indent=2))
        return 0 if ok else 1
    for r in results:
        click.echo(
            f"{r.name}: top-1 agrees with the fp32 model on {r.agreeing} of {r.samples} "
            f"samples ({100 * r.agreement:.2f} %), max abs error {r.max_abs_error:.3g}"
        )
    verdict = "PASS" if ok else "FAIL"
    click.echo(f"{verdict} (snn: top-1 agreement >= {100 * SNN_MIN_AGREEMENT:g} %)")
    return 0 if ok else 1


@main.command("inspect")
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_command(image, as_json):
    """Say what IMAGE holds: machine, PEs, SRAM, router entries, inputs and outputs."""
    from backend.image import decode_image
    from s2c.summary import format_summary, summarise

    data = _read_image_bytes(image)
    summary = summarise(decode_image(data), len(data))
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@main.command("report")
@click.argument("image", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="HTML file to write (default: IMAGE with .html; none with --json unless given).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report's figures as JSON.")
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The ONNX model the image came from: time onnxruntime on it here, beside the estimate.",
)
@click.option(
    "--activity",
    type=click.Path(dir_okay=False, path_type=Path),
    help="For an snn image: the --stats-json file of an `s2c run` of it; its spikes and synaptic "
    "events per layer and timestep enter the estimate and the report.",
)
def report_command(image, output, as_json, model, activity):
    """Cost, placement map, memory and routes of IMAGE, as one self-contained HTML page.

    Latency, throughput and energy are estimates of the cost model (docs/cost-model.md). The
    spiking activity of an snn image depends on its inputs: give it with --activity.
    """
    from backend.image import decode_image
    from s2c.files import atomic_write_bytes
    from s2c.report import build_report, read_activity, time_onnxruntime
    from s2c.report_html import render_html

    if output is None and not as_json:
        output = image.with_suffix(".html")
    if output is not None:
        _check_output_path(output, image, "-o", "image")
    data = _read_image_bytes(image)
    try:
        program = decode_image(data)
    except InputError as error:
        raise InputError(f"{image}: {error}") from None
    timing = None
    if model is not None:
        from s2c.validate import seeded_inputs  # imports onnxruntime: only when it is used

        timing = time_onnxruntime(model, seeded_inputs(program.inputs))
    spikes = read_activity(activity) if activity is not None else None
    report = build_report(program, image.name, len(data), timing, spikes)
    if output is not None:
        _will_write(output)
        atomic_write_bytes(output, render_html(report).encode("utf-8"))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(f"wrote {output}")


@main.command("demo")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=Path("s2c-demo"),
    show_default=True,
    help="Folder for the image and outputs.",
)
@click.pass_context
def demo_command(ctx, output_dir):
    """Compile the bundled digits CNN in float, int8 and snn, run its test set, report.

    Prints each mode's accuracy against onnxruntime and its estimated latency and energy per
    inference, and writes each mode's image, outputs and HTML report.
    """
    from s2c.demo import OUTPUT_FILES, run_demo
    from s2c.progress import terminal_progress

    for name in OUTPUT_FILES:
        _will_write(output_dir / name)
    progress = terminal_progress()
    code = run_demo(output_dir, click.echo, progress)
    progress.done()
    ctx.exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
