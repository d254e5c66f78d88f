"""vos-ros-node-bench: end-to-end latency, model time and memory of vos_node over real DDS.

With --cameras 1,2,4: one node serving that many cameras (one network, batched frames) per run, each
camera publishing at --rate; per-camera latency and answered FPS, model ms per batch and the node's
memory; --separate also runs N single-camera processes for each N > 1 (total answered FPS and memory
of one node against N processes)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from vos_ros.cli.arguments import image_size
from vos_ros.cli.reports import write_json


def _positive(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected camera counts such as 1,2,4, got {text!r}")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vos-ros-node-bench", description=__doc__)
    parser.add_argument("--size", type=image_size, default=(480, 640), help="input WIDTHxHEIGHT (default 640x480)")
    parser.add_argument("--rate", type=_positive, default=30.0, help="input frames per second (default 30)")
    parser.add_argument("--duration", type=_positive, default=120.0, help="seconds of input (default 120)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds left out of the figures (default 10)")
    parser.add_argument("--objects", type=int, default=2, help="objects in the synthetic clip (default 2)")
    parser.add_argument("--config", default="matching", help="network config (default matching)")
    parser.add_argument("--short-side", type=int, default=0, help="network short side; 0: the config's own")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--image-transport",
        choices=("raw", "compressed"),
        default="raw",
        help="publish sensor_msgs/Image (raw, default) or JPEG CompressedImage on <image>/compressed to a node "
        "with image_transport:=compressed",
    )
    parser.add_argument(
        "--churn", type=float, default=0.0, help="remove or re-add an object every this many seconds (default 0: off)"
    )
    parser.add_argument("--rss-interval", type=_positive, default=0.05, help="seconds between RSS samples (0.05)")
    parser.add_argument("--window", type=_positive, default=10.0, help="seconds per memory/latency window (10)")
    parser.add_argument(
        "--cameras", type=_counts, help="camera counts, e.g. 1,2,4: one node serving N cameras per run (see above)"
    )
    parser.add_argument(
        "--separate", action="store_true", help="with --cameras: also N single-camera processes for each N > 1"
    )
    parser.add_argument(
        "--one-node-threads",
        type=int,
        default=0,
        help="with --cameras: torch_threads of the one node (e.g. N x those of each separate process, for the same "
        "threads in both; default 0: the node's default, as each process)",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--plot", type=Path, help="write a PNG of memory and latency over the run (default: beside --json)"
    )
    parser.add_argument("--node-args", nargs=argparse.REMAINDER, default=[], help="extra --ros-args for vos_node")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.warmup < 0 or args.warmup >= args.duration:
        build_parser().error("--warmup must be in [0, duration)")
    if args.churn < 0:
        build_parser().error("--churn must be >= 0")
    if args.separate and not args.cameras:
        build_parser().error("--separate needs --cameras")
    if args.cameras:
        return _cameras(args)
    plot = args.plot or (args.json.with_suffix(".png") if args.json else None)
    from vos_ros.tools.node_bench import BenchOptions, run_node_bench

    options = BenchOptions(
        **_stream_options(args),
        churn=args.churn,
        rss_interval=args.rss_interval,
        window=args.window,
        plot=str(plot) if plot else None,
    )
    try:
        result = run_node_bench(options, progress=lambda line: print(line, file=sys.stderr))
    except RuntimeError as error:
        print(f"vos-ros-node-bench: {error}", file=sys.stderr)
        return 1
    latency, rss = result["latency_ms"], result["rss_mb"]
    print(
        f"frames published {result['frames_published']}, answered {result['frames_answered']} "
        f"({result['answered_hz']:.1f} Hz after warm-up)"
    )
    print(
        f"node means: latency stamp -> labels published {result['node_latency_ms']:.1f} ms = model time "
        f"{result['model_ms']:.1f} + {result['node_latency_over_model_ms']:.1f} ms (input delay "
        f"{result['input_delay_ms']:.1f}, queue wait {result['queue_ms']:.1f}, rest {result['publish_overhead_ms']:.1f})"
    )
    print(
        "latency stamp -> labels received here, ms: "
        + ", ".join(f"{key} {value:.1f}" for key, value in latency.items())
    )
    print("latency p50 per third of the run ms: " + ", ".join(f"{v:.1f}" for v in result["latency_p50_by_third_ms"]))
    print(
        f"node RSS MiB: after warm-up {rss['after_warmup']:.1f}, end {rss['end']:.1f}, max {rss['max']:.1f}, "
        f"slope {rss['slope_mb_per_min']:+.2f} MiB/min (second half {rss['second_half_slope_mb_per_min']:+.2f}), "
        "median per third " + ", ".join(f"{v:.1f}" for v in rss["median_by_third"])
    )
    memory = result["memory"]
    print(
        f"node RSS per {memory['window_s']:g} s window ({memory['peak_source']}): peak max {memory['peak_mb_max']:.1f}, "
        f"trough min {memory['trough_mb_min']:.1f}, swing median {memory['swing_mb_median']:.1f} "
        f"max {memory['swing_mb_max']:.1f} MiB; peak slope over the last two thirds "
        f"{memory['peak_slope_last_two_thirds_mb_per_min']:+.2f} MiB/min "
        f"({memory['peak_growth_last_two_thirds_mb']:+.1f} MiB over {memory['windows_in_fit']} windows)"
    )
    print(
        f"latency p50 first {result['latency_edge_s']:g} s {result['latency_p50_first_ms']:.1f} ms, last "
        f"{result['latency_p50_last_ms']:.1f} ms ({result['latency_p50_change_pct']:+.1f} %); frames unanswered "
        f"{result['frames_unanswered']} (the node received {result['frames_received_by_node']}, dropped "
        f"{result['frames_dropped_by_node']} for newer ones, lost {result['frames_lost']}); churn {result['churn']['removes']} removes, {result['churn']['adds']} adds, "
        f"{len(result['churn']['failures'])} failures" + (f"; plot {result['plot']}" if "plot" in result else "")
    )
    if args.json:
        write_json(args.json, result)
    return 0


def _stream_options(args) -> dict:
    """The options both benchmarks share: the published stream and the node's settings."""
    return {
        "width": args.size[1],
        "height": args.size[0],
        "rate": args.rate,
        "duration": args.duration,
        "warmup": args.warmup,
        "objects": args.objects,
        "config": args.config,
        "short_side": args.short_side,
        "device": args.device,
        "node_args": tuple(args.node_args),
        "image_transport": args.image_transport,
    }


def _cameras(args) -> int:
    from vos_ros.tools.cameras_bench import CamerasBenchOptions, run_cameras_bench

    options = CamerasBenchOptions(
        counts=args.cameras,
        separate=args.separate,
        **_stream_options(args),
        one_node_threads=args.one_node_threads,
    )
    try:
        result = run_cameras_bench(options, progress=lambda line: print(line, file=sys.stderr))
    except RuntimeError as error:
        print(f"vos-ros-node-bench: {error}", file=sys.stderr)
        return 1
    for run in result["runs"]:
        kind = (
            f"{run['cameras']} separate processes"
            if run["separate_processes"]
            else f"{run['cameras']} camera(s), one node"
        )
        cameras = "; ".join(
            f"{name} {c['answered_hz']:.1f} Hz p50 {c['latency_ms']['p50']:.0f} ms p90 {c['latency_ms']['p90']:.0f} ms"
            for name, c in run["per_camera"].items()
        )
        print(
            f"{kind}: answered {run['answered_hz_total']:.1f} Hz in all ({cameras}); model {run['model_ms_per_batch']:.0f} "
            f"ms per batch of {run['batch_size']:.2f}; peak RSS {run['peak_rss_mb']:.0f} MiB, mean after warm-up "
            f"{run['mean_rss_mb_after_warmup']:.0f} MiB; load {', '.join(f'{v:.2f}' for v in run['load_average'])}"
        )
    for key, value in result["ratios"].items():
        print(f"{key}: {value:.2f}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
