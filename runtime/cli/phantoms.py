"""`quadrant phantoms`: synthetic chest phantoms with ground truth, and their manifest."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (images/ and manifest.csv)")
    parser.add_argument("--n", type=int, default=100, help="number of studies (each asked five findings)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--dicom-every", type=int, default=5, help="every N-th study written as DICOM (0: none)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from quadrant.models.phantoms import generate_phantoms

    manifest = generate_phantoms(args.out, args.n, args.seed, size=args.size, dicom_every=args.dicom_every)
    print(manifest)
    return 0
