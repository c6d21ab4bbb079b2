"""Ours against the official implementations (features, input and parameter gradients, fp32).

The official code is not part of this repository: pass the paths of your clones.

Example::

    python tools/compare_official.py \\
        --swin-repo /tmp/official/Swin-Transformer-Semantic-Segmentation \\
        --cswin-repo /tmp/official/CSWin-Transformer --cvt-repo /tmp/official/CvT \\
        --mpvit-repo /tmp/official/MPViT --sizes 97x131 333x517 --archs tiny 13 small \\
        --json agreement.json

``--record tests/data/official_reference.pt.gz`` also writes the test suite's recorded reference
(small archs; see ``mmvit_plugin.benchmark.official.record_reference``).
"""
import argparse

from mmvit_plugin.benchmark.official import DEFAULT_SIZES, run_comparisons


def size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a size is HxW (e.g. 97x131), not {text!r}')
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f'a size must be positive, not {text!r}')
    return h, w


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    for family in ('swin', 'cswin', 'cvt', 'mpvit'):
        parser.add_argument(f'--{family}-repo', metavar='PATH',
                            help=f'clone of the official {family} repository')
    parser.add_argument('--sizes', nargs='+', type=size, default=list(DEFAULT_SIZES),
                        metavar='HxW', help='input sizes (default 97x131 333x517)')
    parser.add_argument('--archs', nargs='+', metavar='ARCH',
                        help='only these archs (names of any family, e.g. tiny 13 small); '
                             'default: every arch with an official counterpart')
    parser.add_argument('--dtypes', nargs='+', choices=('float32', 'float64'), default=['float32'],
                        help='precisions to compare in (float64: what is left is a difference of '
                             'the functions, free of rounding; default float32)')
    parser.add_argument('--weight-scale', type=float, default=0.5,
                        help='size of the random perturbation of the weights (default 0.5)')
    parser.add_argument('--official-noise', action='store_true',
                        help='also report how far the official code\'s own run is from its float64 '
                             'run (what rounding alone does to exact code)')
    parser.add_argument('--seed', type=int, default=0, help='weights and inputs (default 0)')
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--json', metavar='OUT', help='write the rows and the commits as JSON')
    parser.add_argument('--record', metavar='OUT',
                        help='also write the suite\'s recorded reference (.pt.gz)')
    parser.add_argument('--record-only', action='store_true',
                        help='with --record: record without comparing the full archs')
    args = parser.parse_args(argv)
    args.repos = {family: getattr(args, f'{family}_repo')
                  for family in ('swin', 'cswin', 'cvt', 'mpvit') if getattr(args, f'{family}_repo')}
    if not args.repos:
        parser.error('give at least one of --swin-repo, --cswin-repo, --cvt-repo, --mpvit-repo')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.record_only and not args.record:
        raise SystemExit('--record-only needs --record OUT')
    run_comparisons(args.repos, args.sizes, archs=() if args.record_only else args.archs,
                    json_out=args.json,
                    record=args.record, seed=args.seed,
                    dtypes=[getattr(torch, d) for d in args.dtypes], scale=args.weight_scale,
                    official_noise=args.official_noise)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
