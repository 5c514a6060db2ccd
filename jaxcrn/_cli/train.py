"""`jaxcrn train`: train a binary-weight network."""

from ._common import CLIError, check_positive, check_seed, claim_outputs, command


def add(sub) -> None:
    p = command(
        sub,
        "train",
        help="train a binary-weight network on iris, virus or mnist14",
        description="""
            Train a BinaryConnect MLP (binary or ternary weights, ReLU, no batch
            norm) and save it as .npz (W0, b0, W1, b1, ... plus JSON metadata: the
            dataset, its preprocessing, the accuracies and the training settings).
            Options left out take the dataset's preset, which reaches the paper's
            accuracy (presets: iris 4-8-3, 3000 epochs x 3 runs, batch 16, lr 1e-3 ->
            1e-4; virus 10-32-4, 1000 epochs x 4 runs, batch 16, lr 1e-3 -> 1e-5;
            mnist14 196-512-512-10, 250 epochs, batch 100, lr 3e-5 -> 3e-6, loss
            scale 64). Prints the final train/valid/test accuracy.

            Without -o the model is saved as DATASET.npz in the current folder. The
            output files are checked before training starts: an existing file is an
            error unless --force.
        """,
        examples="""
            jaxcrn train iris                      # writes iris.npz (a few seconds)
            jaxcrn train virus --quant ternary -o virus_t.npz
            jaxcrn train mnist14 --data $JAXCRN_DATA -o mnist14.npz --epochs 50
        """,
    )
    p.add_argument("dataset", choices=("iris", "virus", "mnist14"), help="the dataset")
    p.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        metavar="N",
        help="hidden widths (default: the preset's: iris 8, virus 32, mnist14 512 512)",
    )
    p.add_argument(
        "--quant",
        choices=("binary", "ternary"),
        default="binary",
        help="weights in {-1, 1} or {-1, 0, 1} (default: binary)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.15,
        help="ternary: latent weights with |w| below this become 0; in (0, 1] "
        "(default: 0.15)",
    )
    preset = " (default: the preset's)"
    p.add_argument("--epochs", type=int, help="passes over the training set" + preset)
    p.add_argument("--lr-start", type=float, help="initial learning rate" + preset)
    p.add_argument(
        "--lr-end", type=float, help="final learning rate (exponential decay)" + preset
    )
    p.add_argument("--batch", type=int, help="mini-batch size" + preset)
    p.add_argument(
        "--dropout-in", type=float, help="input dropout rate in [0, 1) (default: 0)"
    )
    p.add_argument(
        "--dropout-hidden",
        type=float,
        help="hidden-layer dropout rate in [0, 1) (default: 0)",
    )
    p.add_argument(
        "--restarts", type=int, help="train N times, keep the best run" + preset
    )
    p.add_argument(
        "--loss-scale",
        type=float,
        help="divide the outputs by this inside the hinge loss (1 = the paper's "
        "loss)" + preset,
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of initialisation and shuffling"
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="mnist14: the folder of the MNIST IDX files (default: $JAXCRN_DATA); "
        "virus: re-derive the table from the raw GSE73072 files in DIR (default: the "
        "table shipped with jaxcrn); iris takes none",
    )
    p.add_argument(
        "--test-centering",
        choices=("test", "train"),
        default="test",
        help="mnist14: centre test images by the test mean (the paper) or by the "
        "train mean (default: test)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="MODEL.npz",
        help="where to save the model (default: DATASET.npz in the current folder)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="also save the latent weights, to resume training (default: not saved)",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite -o/--checkpoint files"
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress line (default: shown)"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses
    import time

    if args.output is None:
        args.output = f"{args.dataset}.npz"
    claim_outputs(args.force, args.output, args.checkpoint)
    check_positive(args, "epochs", "batch", "restarts", integer=True)
    check_seed(args)
    check_positive(args, "lr_start", "lr_end", "loss_scale", "threshold")
    if args.threshold is not None and args.threshold > 1:
        raise CLIError(
            f"--threshold must be in (0, 1], got {args.threshold} (weights live in "
            "[-1, 1]; 0.15 is the paper's value)."
        )
    for name in ("dropout_in", "dropout_hidden"):
        v = getattr(args, name)
        if v is not None and not 0 <= v < 1:
            flag = "--" + name.replace("_", "-")
            raise CLIError(f"{flag} must be a rate in [0, 1), got {v}.")
    import jax.random as jr

    from .. import _nn, datasets

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
    model, history = _nn.train(model, data, config, progress=not args.quiet)
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
    metadata = {
        "dataset": args.dataset,
        "class_names": list(data.class_names),
        "preprocessing": data.preprocessing,
        "accuracy": acc,
        "train_config": dataclasses.asdict(config),
        "best_epoch": history["best_epoch"],
        "train_seconds": seconds,
    }
    try:
        _nn.save_model(model, args.output, metadata=metadata, overwrite=args.force)
        print(f"wrote {args.output}")
        if args.checkpoint is not None:
            _nn.save_checkpoint(model, args.checkpoint, overwrite=args.force)
            print(f"wrote {args.checkpoint}")
    except (OSError, ValueError) as e:  # ValueError: non-finite biases
        raise CLIError(str(e).replace(" (overwrite=True)", "")) from None
    return 0
