"""Plot recall accuracy against distance, one line per model.

    python scripts/recall_plot.py OUT.png NAME=SCORE.json ... [--receptive-field N] [--segment N]

Each SCORE.json is the output of `brt recall score --json`. Needs matplotlib.
"""

import argparse
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("scores", nargs="+", metavar="NAME=SCORE.json")
    parser.add_argument("--receptive-field", type=int, help="Slide's reach in bytes (window x layers), drawn as a line")
    parser.add_argument("--segment", type=int, help="training segment in bytes, drawn as a line")
    parser.add_argument("--title", default="recall of a digit by distance")
    args = parser.parse_args()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for item in args.scores:
        name, path = item.split("=", 1)
        buckets = json.load(open(path))["buckets"]
        x = [math.sqrt(b["from"] * b["to"]) for b in buckets]
        y = [b["accuracy"] for b in buckets]
        ax.plot(x, y, marker="o", label=name)
    ax.axhline(0.1, color="gray", linestyle=":", label="chance (0.1)")
    if args.receptive_field:
        ax.axvline(args.receptive_field, color="tab:red", linestyle="--", label=f"Slide's reach ({args.receptive_field} bytes)")
    if args.segment:
        ax.axvline(args.segment, color="tab:green", linestyle="--", label=f"training segment ({args.segment} bytes)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("distance from definition to query (bytes, log scale)")
    ax.set_ylabel("accuracy of the asked digit")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(args.title)
    ax.legend(fontsize=8, loc="center right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out)


if __name__ == "__main__":
    main()
