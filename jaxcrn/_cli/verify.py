"""`jaxcrn verify`: check a compiled CRN against its network on a dataset."""

import os

from .._files import to_json
from ._common import (
    MAX_COUNT,
    CLIError,
    add_solver_options,
    add_store_options,
    check_model_fits,
    check_positive,
    check_seed,
    check_solver_options,
    check_store,
    claim_outputs,
    command,
    format_table,
    load_dataset,
    load_model_or_fail,
    setup_jax,
    solver,
    store_error,
    write_files,
)


def add(sub) -> None:
    p = command(
        sub,
        "verify",
        help="check that the compiled CRN computes the network on a dataset",
        description="""
            Compile the model (full and reduced CRN), simulate a dataset split
            through both, and compare with the network's forward pass: argmax
            agreement, max |CRN - NN|, how many samples reached a steady state
            ('steady'), and the median time until every output is within 1e-3 of its
            final value ('t_eps(med)'). With --rates K, also re-simulate every
            example under K sets of random rate constants (log-uniform in [0.1,
            10]), all of them in one batch. With --store DIR the results are
            written as they are computed, and --resume continues an interrupted
            run. Exit status 1 when some sample disagrees.
        """,
        examples="""
            jaxcrn verify experiments/models/iris.npz iris --limit 20
            jaxcrn verify experiments/models/virus.npz virus --rates 3 --json virus.json
            jaxcrn verify experiments/models/mnist14.npz mnist14 --data $JAXCRN_DATA --crn reduced --store runs/m14 --resume
        """,  # noqa: E501
    )
    p.add_argument("model", help="model .npz")
    p.add_argument("dataset", choices=("iris", "virus", "mnist14"), help="the dataset")
    p.add_argument(
        "--split",
        choices=("train", "valid", "test"),
        default="test",
        help="which split (default: test)",
    )
    p.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="only the first N examples (default: all)",
    )
    p.add_argument(
        "--rates",
        type=int,
        default=0,
        metavar="K",
        help="random rate sets to try (default: 0)",
    )
    p.add_argument(
        "--crn",
        choices=("both", "full", "reduced"),
        default="both",
        help="which CRN to check (default: both)",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="mnist14: the folder of the MNIST IDX files (default: $JAXCRN_DATA); "
        "iris and virus ship with jaxcrn",
    )
    p.add_argument(
        "--json",
        metavar="OUT.json",
        help="also write the report as JSON to this file (default: none)",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite the --json file if it exists"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the random rates (default: 0)"
    )
    p.add_argument(
        "--lanes",
        type=int,
        default=None,
        help="samples integrated side by side (default: plan_batch's choice by "
        "the network's size, 32-512 on a CPU, 16384 on a GPU)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress line (default: shown)"
    )
    add_solver_options(p)
    add_store_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    check_solver_options(args)
    check_positive(args, "limit", "lanes", integer=True)
    if not 0 <= args.rates <= MAX_COUNT:
        raise CLIError(
            f"--rates must be an integer from 0 to {MAX_COUNT}, got {args.rates}."
        )
    check_seed(args)
    claim_outputs(args.force, args.json, reads=[args.model])
    check_store(args)
    setup_jax(args)
    import numpy as np

    from .._nn import accuracy
    from .._nn2crn import count_reactions, is_noncompetitive, nn_to_crn, reduce_crn
    from .._verify import verify

    model = load_model_or_fail(args.model)
    dataset = load_dataset(args.dataset, args.data)
    check_model_fits(model, args.model, args.dataset, dataset)
    data = dataset.split(args.split)
    x, y = data.x, data.y
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    full = nn_to_crn(model)
    variants = {}
    if args.crn in ("both", "full"):
        variants["full"] = full
    if args.crn in ("both", "reduced"):
        variants["reduced"] = reduce_crn(full)
    kw = dict(
        solver=solver(args.solver),
        max_steps=args.max_steps,
        stop_when_steady=args.steady,
        steady_tol=args.steady_tol,
        lanes=args.lanes,
        chunk_size=args.chunk_size,
    )
    nn_acc = float(accuracy(model, x, y))
    report = {
        "model": args.model,
        "dataset": args.dataset,
        "split": args.split,
        "layers": list(model.layer_sizes),
        "n_examples": int(len(x)),
        "class_names": list(dataset.class_names),
        "nn_accuracy": nn_acc,
        "t1": args.t1,
        "rtol": args.rtol,
        "atol": args.atol,
        "crn": {},
    }
    rows = []
    all_ok = True
    for name, crn in variants.items():
        try:
            rep = verify(
                model,
                crn,
                x,
                t1=args.t1,
                rate_samples=args.rates,
                seed=args.seed,
                rtol=args.rtol,
                atol=args.atol,
                progress=not args.quiet,
                store=None if args.store is None else os.path.join(args.store, name),
                resume=args.resume,
                **kw,
            )
        except (OSError, ValueError) as e:
            if args.store is None:
                raise
            raise store_error(e) from None
        pred = np.argmax(rep.crn_outputs, axis=1)
        crn_acc = float(np.mean(pred == y))
        d = rep.as_dict()
        d["crn_accuracy"] = crn_acc
        d["counts"] = count_reactions(crn).as_dict()
        d["noncompetitive"] = bool(is_noncompetitive(crn))
        report["crn"][name] = d
        conv = d["convergence"][f"eps_{rep.eps:g}"]
        rows.append(
            [
                name,
                f"{rep.agreement}/{rep.n}",
                crn_acc,
                rep.max_abs_error,
                "-",
                f"{int(rep.converged.sum())}/{rep.n}",
                conv["median"] if conv["median"] is not None else float("inf"),
                f"{args.t1:g}",
                rep.wall_s,
            ]
        )
        for k, rs in enumerate(rep.rate_samples):
            rows.append(
                [
                    f"  random rates #{k + 1}",
                    f"{rs.agreement}/{rep.n}",
                    "-",
                    rs.max_abs_error,
                    rs.max_change,
                    f"{rs.ok}/{rep.n} ok",
                    "-",
                    f"{rs.t1:.4g}",
                    "-",
                ]
            )
            all_ok &= rs.agreement == rep.n
        all_ok &= rep.agreement == rep.n
    print(
        f"{args.dataset} {args.split}: {len(x)} examples, network "
        f"{'-'.join(map(str, model.layer_sizes))}, NN accuracy {nn_acc:.4f}, "
        f"t1 = {args.t1:g}"
    )
    header = [
        "CRN",
        "agree",
        "accuracy",
        "max|CRN-NN|",
        "max change",
        "steady",
        "t_eps(med)",
        "t1",
        "wall s",
    ]
    print(format_table(header, rows, digits=4))
    if args.rates:
        print(
            "random rates: log-uniform in [0.1, 10], simulated to t1/min(rate); "
            "'max change' is the largest output difference from rates 1."
        )
    if args.json:
        write_files({args.json: to_json(report, indent=1)}, args.force)
        print(f"wrote {args.json}")
    return 0 if all_ok else 1
