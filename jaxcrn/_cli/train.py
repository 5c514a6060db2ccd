"""`jaxcrn train`: train a binary-weight network."""

import os

from ._common import (
    CLIError,
)


def add(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a binary-weight network on iris, virus or mnist14",
        description=(
            "Train a BinaryConnect MLP (binary or ternary weights, ReLU, no batch "
            "norm) and save it as .npz (W0, b0, W1, b1, ... plus JSON metadata). "
            "Options left out take the dataset's preset, which reaches the paper's "
            "accuracy. Prints the final train/valid/test accuracy."
        ),
    )
    p.add_argument("dataset", choices=("iris", "virus", "mnist14"))
    p.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        metavar="N",
        help="hidden widths (iris: 8, virus: 32, mnist14: 512 512)",
    )
    p.add_argument("--quant", choices=("binary", "ternary"), default="binary")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.15,
        help="ternary zero threshold in (0, 1] (default 0.15)",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr-start", type=float)
    p.add_argument("--lr-end", type=float)
    p.add_argument("--batch", type=int, help="mini-batch size")
    p.add_argument("--dropout-in", type=float)
    p.add_argument("--dropout-hidden", type=float)
    p.add_argument("--restarts", type=int, help="train N times, keep the best")
    p.add_argument(
        "--loss-scale",
        type=float,
        help="divide the outputs by this inside the hinge loss (1 = paper)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--data",
        metavar="DIR",
        help="data folder (mnist14: the IDX files, default $JAXCRN_DATA; virus: "
        "re-derive from the raw GSE73072 files)",
    )
    p.add_argument(
        "--test-centering",
        choices=("test", "train"),
        default="test",
        help="mnist14: centre test images by the test mean (paper) or train mean",
    )
    p.add_argument("-o", "--output", metavar="MODEL.npz", help="where to save")
    p.add_argument("--checkpoint", metavar="FILE", help="also save latent weights")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses
    import time

    import jax.random as jr

    from .. import _nn, datasets

    for name in ("output", "checkpoint"):
        path = getattr(args, name)
        if path is None:
            continue
        if os.path.exists(path) and not args.force:
            raise CLIError(f"{path} exists; pass --force to overwrite it.")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise CLIError(f"cannot write {path}: folder {folder} does not exist.")
    if args.test_centering != "test" and args.dataset != "mnist14":
        raise CLIError("--test-centering only applies to mnist14.")
    hidden, config = _nn.preset(args.dataset, args.quant)
    overrides = {
        "epochs": args.epochs,
        "lr_start": args.lr_start,
        "lr_end": args.lr_end,
        "batch_size": args.batch,
        "dropout_in": args.dropout_in,
        "dropout_hidden": args.dropout_hidden,
        "restarts": args.restarts,
        "loss_scale": args.loss_scale,
    }
    try:
        config = dataclasses.replace(
            config,
            seed=args.seed,
            **{k: v for k, v in overrides.items() if v is not None},
        )
        if args.hidden is not None:
            if not args.hidden or min(args.hidden) < 1:
                raise ValueError(f"--hidden widths must be >= 1, got {args.hidden}.")
            hidden = tuple(args.hidden)
        if args.dataset == "mnist14":
            data = datasets.mnist14(args.data, test_centering=args.test_centering)
        elif args.dataset == "virus":
            data = datasets.virus(args.data)
        else:
            if args.data is not None:
                raise ValueError("iris ships with jaxcrn; it takes no --data.")
            data = datasets.iris()
        if config.batch_size > len(data.train):
            raise ValueError(
                f"--batch {config.batch_size} exceeds the {len(data.train)} "
                "training samples."
            )
        sizes = (data.n_features, *hidden, data.n_classes)
        model = _nn.init_model(
            sizes,
            key=jr.PRNGKey(args.seed),
            quantization=args.quant,
            threshold=args.threshold,
        )
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e).replace("\n", " ")) from None
    arch = "-".join(map(str, sizes))
    if not args.quiet:
        print(
            f"training {args.dataset} {arch} ({args.quant}) for {config.epochs} epochs"
            + (f" x {config.restarts} runs" if config.restarts > 1 else ""),
            flush=True,
        )
    start = time.perf_counter()
    model, history = _nn.train(model, data, config, quiet=args.quiet)
    seconds = time.perf_counter() - start
    acc = {
        s: _nn.accuracy(model, data.split(s).x, data.split(s).y)
        for s in ("train", "valid", "test")
    }
    print(
        f"{args.dataset} {arch} {args.quant}: best epoch {history['best_epoch']}"
        f"/{config.epochs}, {seconds:.1f} s"
    )
    print(
        f"accuracy: train {100 * acc['train']:.2f}%  valid {100 * acc['valid']:.2f}%  "
        f"test {100 * acc['test']:.2f}%"
    )
    if args.output is not None:
        metadata = {
            "dataset": args.dataset,
            "class_names": list(data.class_names),
            "preprocessing": data.preprocessing,
            "accuracy": acc,
            "train_config": dataclasses.asdict(config),
            "best_epoch": history["best_epoch"],
            "train_seconds": seconds,
        }
        _nn.save_model(model, args.output, metadata=metadata, overwrite=args.force)
        print(f"saved {args.output}")
    if args.checkpoint is not None:
        _nn.save_checkpoint(model, args.checkpoint, overwrite=args.force)
        print(f"saved {args.checkpoint}")
    return 0
