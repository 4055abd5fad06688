"""The command line's flags: one sub-parser per command, and the configuration the flags give."""

from __future__ import annotations

import argparse

from bioleaf.config import DATASETS, RULE_NAMES, TRAIN_FLAGS, TrainConfig
from bioleaf.presets import PRESETS

EQUIVALENCE_STEPS = 50
EQUIVALENCE_INIT_SCALE = 0.3


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit code 2)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    """The ``bioleaf`` command line: global flags and one sub-parser per command."""
    parser = Parser(prog="bioleaf", description="Bio-plausible local learning for spiking neural networks.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _add_train(sub)
    _add_eval(sub)
    _add_checks(sub)
    _add_export(sub)
    _add_compare(sub)
    _add_plot(sub)
    _add_bench(sub)
    return parser


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rule", default=None, help=f"learning rule: {', '.join(RULE_NAMES)} (default bioleaf)")
    p.add_argument("--dataset", default=None, help=f"{', '.join(DATASETS)} (default fashion-mnist, or digits if "
                                                   "Fashion-MNIST is not installed)")
    p.add_argument("--data-dir", default=None, help="directory with the four IDX files")
    p.add_argument("--preset", default=None, help=f"named hyperparameters: {', '.join(PRESETS)}")
    for flag, (_, typ, text) in TRAIN_FLAGS.items():
        p.add_argument(flag, type=_float if typ is float else typ, default=None, help=text)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None


def _add_train(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a network and write config, metrics, summary and model to --out")
    _add_config_flags(t)
    t.add_argument("--out", default="runs/latest", help="output directory (default runs/latest)")
    t.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.safetensors")
    t.add_argument("--overwrite", action="store_true", help="replace a finished run already in --out")
    t.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every K batches")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--distributed", action="store_true", help="data-parallel training under torchrun "
                   "(see docs/distributed.md)")
    t.add_argument("--dist-timeout", type=_float, default=None, metavar="SECONDS",
                   help="--distributed: give up when another rank does not answer for this long "
                        "(default $BIOLEAF_DIST_TIMEOUT, else 300)")
    t.add_argument("--json", action="store_true", help="print the summary as JSON")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="reload a trained model and print its test accuracy")
    e.add_argument("dir", help="a directory written by bioleaf train")
    e.add_argument("--data-dir", default=None, help="override the dataset directory")
    e.add_argument("--json", action="store_true")


def _add_checks(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("check-equivalence", help="cosine between BioLeaF updates and ST-BP gradients per layer "
                                                 f"(defaults --steps {EQUIVALENCE_STEPS} --init-scale {EQUIVALENCE_INIT_SCALE})")
    _add_config_flags(q)
    q.add_argument("--samples", type=int, default=64, help="batch of samples (default 64)")
    q.add_argument("--json", action="store_true")

    k = sub.add_parser("check-locality", help="measure what each population's input and each synapse's change "
                                              "depend on (spikes held fixed); exit 1 if the contract is broken")
    _add_config_flags(k)
    k.add_argument("--samples", type=int, default=32, help="batch of training samples (default 32)")
    k.add_argument("--json", action="store_true")


def _add_export(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser("export", help="write a trained network in an interchange format")
    x.add_argument("dir", help="a directory written by bioleaf train")
    x.add_argument("--format", default="nir", choices=["nir"], help="interchange format (default nir)")
    x.add_argument("--out", required=True, help="output file, e.g. model.nir")


def _add_compare(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("compare", help="train every rule with the same network, data order and seeds; tabulate")
    _add_config_flags(c)
    c.add_argument("--rules", default="bioleaf,stbp,bptt", help="comma-separated rules (default all)")
    c.add_argument("--feedbacks", default="symmetric,random", help="bioleaf feedback modes to include")
    c.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    c.add_argument("--out", required=True, help="output directory (results.csv, results.md, PNG, runs/)")
    c.add_argument("--jobs", type=int, default=1,
                   help="training runs at once (default 1; each uses --threads threads, so jobs x threads <= cores)")
    c.add_argument("--json", action="store_true", help="print the rows as JSON")


def _add_plot(sub: argparse._SubParsersAction) -> None:
    pl = sub.add_parser("plot", help="save PNG figures of a trained run into its directory")
    pl.add_argument("dir", help="a directory written by bioleaf train")
    pl.add_argument("--sample", type=int, default=0, help="test sample shown in rasters (default 0)")


def _add_bench(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("bench", help="speed, memory and GFLOP/s of bioleaf, bptt and the peers (snnTorch, Norse, "
                       "SpikingJelly)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of the bench itself)")
    b.add_argument("--speed-only", action="store_true", help="speed and GFLOP/s only, without the memory probes")
    b.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    b.add_argument("--scaling", action="store_true", help="instead: speed and peak memory over hidden width, T and "
                   "batch (on a GPU also the community benchmark's 16384-cell layer); tables, JSON and PNG in --out")
    b.add_argument("--out", default=None, help="--scaling: output directory (default runs/bench-scaling)")
    b.add_argument("--memory-budget", type=_float, default=None, metavar="MB",
                   help="--scaling on a CPU: memory one training point may add before it counts as out of memory "
                        "(default 4096)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Defaults < ``--preset`` < explicit flags; validated (:func:`bioleaf.api.configure`: without an explicit
    ``--dataset`` or ``--data-dir``, a missing Fashion-MNIST falls back to the bundled digits with a notice)."""
    from bioleaf.api import configure

    values: dict[str, object] = {key: getattr(args, key) for key in ("rule", "dataset", "data_dir")
                                 if getattr(args, key) is not None}
    for flag, (field, _, _) in TRAIN_FLAGS.items():
        v = getattr(args, flag[2:].replace("-", "_"))
        if v is not None:
            values[field] = v
    return configure(args.preset, values)


def forwarded_flags(args: argparse.Namespace, skip: tuple[str, ...] = ()) -> list[str]:
    """The config flags the user gave, as ``bioleaf train`` arguments."""
    flags = ["--preset", "--dataset", "--data-dir", *TRAIN_FLAGS]
    out: list[str] = []
    for flag in flags:
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None and flag not in skip:
            out += [flag, str(value)]
    return out
