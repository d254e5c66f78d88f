"""vos-ros-bench: ms per frame against the number of objects (the paper's flat-cost claim)."""

from __future__ import annotations

import argparse
import platform
import sys
import warnings
from pathlib import Path

import torch

from vos_ros.cli.arguments import add_backend_arguments, add_short_side_argument, image_size
from vos_ros.cli.reports import write_json
from vos_ros.eval.speed import measure_ms_per_frame, profile_stages
from vos_ros.model import DEFAULT_CONFIG, build_network
from vos_ros.model.backends import make_backend


def _instances(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"instances must be comma-separated integers, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("instances must be >= 1")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vos-ros-bench", description=__doc__)
    parser.add_argument(
        "--instances", type=_instances, default=[1, 2, 3, 4, 5, 8], help="object counts (default 1,2,3,4,5,8)"
    )
    parser.add_argument("--size", type=image_size, default=(480, 854), help="input WIDTHxHEIGHT (default 854x480)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--config", default=None, help=f"network config (default {DEFAULT_CONFIG})")
    parser.add_argument("--weights", help="checkpoint path (default: shipped weights of the config)")
    add_backend_arguments(parser)
    add_short_side_argument(parser)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    parser.add_argument("--frames", type=int, default=10, help="timed frames per run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per object count (default 3)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time each stage of a frame (preprocessing, backbone, ..., post-processing) for 1 and 5 objects",
    )
    parser.add_argument(
        "--profile-instances", type=_instances, default=[1, 5], help="object counts to profile (default 1,5)"
    )
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--plot", help="write a PNG of ms/frame against the object count here")
    return parser


def _plot(results: dict[int, dict], title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = sorted(results)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(counts, [results[k]["median_ms"] for k in counts], marker="o")
    ax.set_xlabel("objects tracked")
    ax.set_ylabel("ms / frame (median)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_profile(profiles: dict[int, dict]) -> None:
    counts = sorted(profiles)
    names = list(profiles[counts[0]]["stages_ms"])
    print("\nprofile: mean ms per frame by stage")
    print(f"{'stage':<22}" + "".join(f"{f'{k} obj':>10}" for k in counts))
    for name in names:
        print(f"{name:<22}" + "".join(f"{profiles[k]['stages_ms'].get(name, 0.0):>10.1f}" for k in counts))
    for label, key in (("sum of stages", "sum_ms"), ("measured frame", "frame_ms"), ("unaccounted", "unaccounted_ms")):
        print(f"{label:<22}" + "".join(f"{profiles[k][key]:>10.1f}" for k in counts))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*untrained.*")
            network = make_backend(build_network(args.config, args.weights, args.device), args.backend, args.graph_dir)
    except ValueError as error:
        print(f"vos-ros-bench: error: {error}", file=sys.stderr)
        return 2
    height, width = args.size
    short_side = args.short_side or network.config.short_side
    results = measure_ms_per_frame(
        network, args.instances, (height, width), frames=args.frames, repeats=args.repeats, short_side=short_side
    )
    name = network.config.name
    print(
        f"config {name}  backend {args.backend}  device {network.device}  input {width}x{height}  "
        f"short side {short_side}  threads {args.threads}"
    )
    print(f"{'objects':>8} {'ms/frame':>9} {'p90':>7} {'FPS':>6}")
    for k in sorted(results):
        ms = results[k]["median_ms"]
        print(f"{k:>8d} {ms:>9.1f} {results[k]['p90_ms']:>7.1f} {1000.0 / ms:>6.1f}")
    report = {
        "config": name,
        "backend": args.backend,
        "device": str(network.device),
        "input_size": [width, height],
        "short_side": short_side,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "ms_per_frame": {str(k): v["median_ms"] for k, v in results.items()},
        "p90_ms": {str(k): v["p90_ms"] for k, v in results.items()},
    }
    if 1 in results and 5 in results:
        report["ratio_5_to_1"] = results[5]["median_ms"] / results[1]["median_ms"]
        print(f"ratio_5_to_1 {report['ratio_5_to_1']:.3f}")
    if args.profile:
        profiles = profile_stages(
            network, args.profile_instances, (height, width), frames=args.frames, short_side=short_side
        )
        _print_profile(profiles)
        report["profile"] = {str(k): v for k, v in profiles.items()}
    if args.json:
        write_json(args.json, report)
    if args.plot:
        _plot(results, f"vos_ros {name}, {width}x{height}, {network.device}", args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
