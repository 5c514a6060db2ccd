"""Convert mass-action signalling models bundled with PySB to `.crn` files of the
benchmark corpus (`benchmarks/crns/`), and check each conversion.

Most models are the examples PySB ships (`pysb.examples`, BSD 2-clause licence,
copyright the PySB developers), each implementing a published model:

- `earm_1_0`: extrinsic apoptosis reaction model 1.0 (Albeck et al. 2008);
- `earm_1_3`: EARM 1.3 (Gaudet et al. 2012);
- `kinase_cascade`: the Ras-Raf-MEK-ERK cascade of Chen et al. 2009;
- `egfr_simple`: BioNetGen's egfr_simple example (`bngwiki_egfr_simple`);
- `fricker_2010_apoptosis`: CD95 signalling (Fricker et al. 2010);

and two larger models from BioNetGen's own examples (`bng2/Models2` of its source
tree, MIT licence; not in the `bionetgen` package, so `--bngl-dir` must point at
them), read with PySB's BNGL importer:

- `egfr_net`: early EGF receptor signalling (Blinov et al. 2006), 356 species;
- `fceri_ji`: FceRI signalling (Faeder et al. 2003), 354 species.

PySB expands each rule-based model into its reaction network with BioNetGen
(BNG2.pl, from the `bionetgen` package; MIT licence). Every reaction's rate law must
be a constant times the product of its reactants (mass action; BioNetGen's 1/2 for
identical reactants goes into the constant), or the conversion stops. The species
whose initial amounts are varied per sample become single-rail inputs; every other
initial amount becomes an `init`.

The check, per model: libRoadRunner simulates PySB's own SBML export of the model
(an independent path: PySB's exporter, SBML, CVODE) and scipy Radau simulates the
`.crn` file (`peers.MassAction`), both at rtol 1e-10, on five samples of the file's
inputs; every species at t1 must agree within 1e-6 (`peers.check_states`). The
result goes into the file's header.

    pip install pysb bionetgen        # not project dependencies: only this script
    python benchmarks/import_models.py [--models earm_1_0,...] [--check-samples 5]
    python benchmarks/import_models.py --models egfr_net,fceri_ji \
        --bngl-dir BIONETGEN/bng2/Models2 --bngl-commit COMMIT

BNG2.pl needs perl; the script finds BioNetGen through $BNGPATH or the `bionetgen`
package.
"""

import argparse
import dataclasses
import importlib
import importlib.metadata
import os
import re
import sys

import numpy as np


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import peers  # noqa: E402  (numpy-only top level)


@dataclasses.dataclass(frozen=True)
class Model:
    module: str  # in pysb.examples
    name: str  # the .crn file name
    title: str
    reference: str
    t1: float
    inputs: dict  # pysb initial-amount parameter -> "uniform LO HI" / "loguniform"
    note: str = ""
    bngl: str = ""  # a BioNetGen model file (in --bngl-dir) instead of a PySB example


MODELS = [
    Model(
        "earm_1_0",
        "earm_1_0",
        "EARM 1.0, the extrinsic apoptosis reaction model",
        "J. G. Albeck, J. M. Burke, S. L. Spencer, D. A. Lauffenburger and P. K. "
        'Sorger, "Modeling a snap-action, variable-delay switch controlling '
        'extrinsic cell death", PLoS Biology 6 (2008) e299',
        20000.0,
        {"L_0": "loguniform 300 30000", "XIAP_0": "uniform 5e4 2e5"},
        "Amounts in molecules per cell, time in s; t1 = 20000 s as PySB's "
        "run_earm_1_0.py.",
    ),
    Model(
        "earm_1_3",
        "earm_1_3",
        "EARM 1.3, the extrinsic apoptosis reaction model",
        'S. Gaudet, S. L. Spencer, W. W. Chen and P. K. Sorger, "Exploring the '
        "contextual sensitivity of factors that determine cell-to-cell variability "
        'in receptor-mediated apoptosis", PLoS Computational Biology 8 (2012) '
        "e1002482",
        20000.0,
        {"L_0": "loguniform 300 30000", "XIAP_0": "uniform 5e4 2e5"},
        "Amounts in molecules per cell, time in s.",
    ),
    Model(
        "kinase_cascade",
        "kinase_cascade",
        "The Ras-Raf-MEK-ERK kinase cascade (distributive double phosphorylation)",
        "a portion of W. W. Chen, B. Schoeberl, P. J. Jasper, M. Niepel, U. B. "
        'Nielsen, D. A. Lauffenburger and P. K. Sorger, "Input-output behavior of '
        "ErbB signaling pathways as revealed by a mass action model trained against "
        'dynamic data", Molecular Systems Biology 5 (2009) 239',
        1200.0,
        {"Ras_0": "loguniform 6e3 6e5"},
        "Amounts in molecules per cell, time in s; t1 = 1200 s as PySB's "
        "run_kinase_cascade.py.",
    ),
    Model(
        "bngwiki_egfr_simple",
        "egfr_simple",
        "BioNetGen's egfr_simple: EGF receptor binding, dimerisation, "
        "transphosphorylation, Grb2 and Sos1 recruitment",
        "the BioNetGen example egfr_simple (J. R. Faeder, M. L. Blinov and W. S. "
        'Hlavacek, "Rule-based modeling of biochemical systems with BioNetGen", '
        "Methods Mol. Biol. 500 (2009) 113-167), as translated in PySB's examples",
        120.0,
        {"EGF_init": "loguniform 1.2e5 1.2e7"},
        "Amounts in molecules per cell, time in s; EGF 2 to 200 nM in a "
        "1e-10 L extracellular volume per cell.",
    ),
    Model(
        "fricker_2010_apoptosis",
        "fricker_2010",
        "CD95 (Fas) signalling to caspase-8 and Bid, with c-FLIP",
        'N. Fricker et al., "Model-based dissection of CD95 signaling dynamics '
        'reveals both a pro- and antiapoptotic role of c-FLIPL", Journal of Cell '
        "Biology 190 (2010) 377-389",
        20000.0,
        {"L_0": "loguniform 1.5e5 1.5e7", "flipL_0": "uniform 250 1000"},
        "Amounts in molecules per cell, time in s.",
    ),
    Model(
        "egfr_net",
        "egfr_net",
        "Early EGF receptor signalling with its combinatorial complexity (Shc, Grb2, "
        "Sos)",
        'M. L. Blinov, J. R. Faeder, B. Goldstein and W. S. Hlavacek, "A network '
        "model of early events in epidermal growth factor receptor signaling that "
        'accounts for combinatorial complexity", BioSystems 83 (2006) 136-151',
        40.0,
        {"egf_tot": "loguniform 1.2e5 1.2e7", "Sos_tot": "uniform 6.5e3 2.6e4"},
        "Amounts in molecules per cell, time in s; t1 = 40 s as the model file's "
        "simulate action.",
        bngl="egfr_net.bngl",
    ),
    Model(
        "fceri_ji",
        "fceri_ji",
        "FceRI signalling: receptor aggregation by a bivalent ligand, Lyn and Syk",
        "J. R. Faeder, W. S. Hlavacek, I. Reischl, M. L. Blinov, H. Metzger, A. "
        'Redondo, C. Wofsy and B. Goldstein, "Investigation of early events in '
        'Fc epsilon RI-mediated signaling using a detailed mathematical model", '
        "Journal of Immunology 170 (2003) 3769-3781",
        600.0,
        {"Lig_tot": "loguniform 600 60000", "Syk_tot": "uniform 200 800"},
        "Amounts in molecules, time in s; t1 = 600 s as the model file's "
        "simulate action.",
        bngl="fceri_ji.bngl",
    ),
]
BNGL_SOURCE = (
    "BioNetGen's example model bng2/Models2/{file} (github.com/RuleWorld/bionetgen "
    "at {commit}, MIT licence, copyright James R. Faeder), read by PySB's BNGL "
    "importer"
)


def bng_path() -> str:
    path = os.environ.get("BNGPATH")
    if path:
        return path
    import bionetgen

    path = os.path.join(os.path.dirname(bionetgen.__file__), "bng-linux")
    for exe in ("run_network", "NFsim"):  # wheels may drop the executable bit
        f = os.path.join(path, "bin", exe)
        if os.path.exists(f) and not os.access(f, os.X_OK):
            os.chmod(f, 0o755)
    return path


def species_name(i: int, complex_pattern) -> str:
    """`s{i}_` plus the monomers of the species, e.g. `s12_Bax_Bcl2`."""
    mons = [mp.monomer.name for mp in complex_pattern.monomer_patterns]
    name = f"s{i}_" + "_".join(mons)
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def to_crn(spec: Model, model):
    """The network PySB generated for `model` as a jaxcrn CRN, with the inputs."""
    import sympy

    import jaxcrn

    if model.compartments:
        raise SystemExit(f"{spec.module}: compartments are not supported")
    symbols = {}  # PySB's parameters and expressions are sympy symbols
    for p in model.parameters:
        symbols[p] = float(p.value)
    for e in model.expressions:  # in dependency order, as PySB keeps them
        symbols[e] = float(e.expand_expr().subs(symbols))
    names = [species_name(i, cp) for i, cp in enumerate(model.species)]
    reactions, dropped = [], []
    for r in model.reactions:
        mono = sympy.Integer(1)
        for i in r["reactants"]:
            mono *= sympy.Symbol(f"__s{i}")
        k = sympy.sympify(r["rate"]).xreplace(symbols) / mono  # monomials cancel
        if k.free_symbols:
            k = sympy.simplify(k)
        if k.is_number and float(k) == 0:
            dropped.append(r["rule"][0])  # a switched-off rule: no flux
            continue
        if not k.is_number or not float(k) > 0:
            raise SystemExit(
                f"{spec.module}: reaction {r['rule']} has rate {r['rate']}, not a "
                "positive constant times its reactants (not mass action)"
            )
        reactants = [(names[i], 1) for i in r["reactants"]]
        products = [(names[i], 1) for i in r["products"]]
        reactions.append(jaxcrn.Reaction(reactants, products, float(k)))
    init, inputs, input_of = [], [], {}
    for ic in model.initials:
        if getattr(ic, "fixed", False):
            raise SystemExit(f"{spec.module}: fixed species are not supported")
        i = model.get_species_index(ic.pattern)
        value = ic.value
        pname = value.name
        amount = symbols[value]
        if pname in spec.inputs:
            input_of[pname] = names[i]
            inputs.append(jaxcrn.Signal(input_name(pname), names[i]))
        elif amount:
            init.append((names[i], amount))
    missing = sorted(set(spec.inputs) - set(input_of))
    if missing:
        raise SystemExit(f"{spec.module}: no initial amount named {missing}")
    crn = jaxcrn.CRN(tuple(reactions), tuple(init), tuple(inputs), ())
    return crn, names, dropped


def input_name(param: str) -> str:
    return re.sub(r"(_0|_init)$", "", param).lower()


def roadrunner_sbml_states(
    model, spec: Model, names, inputs, x, rtol, atol
) -> np.ndarray:
    """Final states of PySB's SBML export under libRoadRunner, `(samples, species)`."""
    import roadrunner
    from pysb.export import export

    rr = roadrunner.RoadRunner(export(model, "sbml"))
    rr.integrator.relative_tolerance = rtol
    rr.integrator.absolute_tolerance = atol
    rr.integrator.maximum_num_steps = 1_000_000
    ids = [f"__s{i}" for i in range(len(names))]
    rr.timeCourseSelections = ["time"] + [f"[{s}]" for s in ids]
    targets = [ids[names.index(s.pos)] for s in inputs]
    out = []
    for row in x:
        rr.resetAll()
        # the initial amounts are assigned from these parameters; setting the
        # species' init() instead regenerates the model (minutes at 3,000 reactions)
        for param, sid, v in zip(spec.inputs, targets, row, strict=True):
            try:
                rr[param] = float(v)
            except RuntimeError:  # an expression (assignment rule): set the species
                rr.setValue(f"init({sid})", float(v))
        rr.reset()
        got = [rr.getValue(sid) for sid in targets]
        if not np.allclose(got, row, rtol=1e-12):
            raise SystemExit(f"{spec.name}: libRoadRunner did not take the inputs")
        res = rr.simulate(0.0, spec.t1, 2)
        out.append(np.asarray(res)[-1, 1:])
    return np.asarray(out)


def header(
    spec: Model, model, crn, check: dict | None, dropped: list, origin: str
) -> str:
    import jaxcrn

    counts = jaxcrn.count_reactions(crn)
    pysb_v = importlib.metadata.version("pysb")
    bng_v = open(os.path.join(bng_path(), "VERSION")).read().strip()
    lines = [
        f"# {spec.title}: {counts.species} species, {counts.reactions} reactions "
        "(mass action).",
        f"# Source: {spec.reference}.",
        f"#   {origin}, PySB {pysb_v};",
        f"#   expanded to reactions by BioNetGen {bng_v} and converted by "
        "benchmarks/import_models.py.",
        f"#   {spec.note}",
    ]
    if dropped:
        lines.append(
            f"#   Left out: {len(dropped)} reactions of rate 0 (rules "
            f"{', '.join(sorted(set(dropped)))})."
        )
    if check:
        lines.append(
            "#   Checked: libRoadRunner on PySB's SBML export vs scipy Radau on "
            f"this file, rtol 1e-10, {check['samples']} samples: max scaled "
            f"error {check['max_scaled_err']:.1e} over all species at t1."
        )
    lines.append(
        "# Per sample: "
        + ", ".join(f"{p} (input {input_name(p)})" for p in spec.inputs)
        + ". Species s{i}_...: PySB's species i, named by its monomers:"
    )
    for i, cp in enumerate(model.species):
        lines.append(f"#   s{i}: {cp}")
    lines.append(f"#@ t1: {spec.t1:g}")
    for p, law in spec.inputs.items():
        lines.append(f"#@ sample {input_name(p)}: {law}")
    return "\n".join(lines) + "\n"


def convert(
    spec: Model, check_samples: int, out_dir: str, bngl_dir: str | None, commit: str
) -> str:
    from pysb.bng import generate_equations

    import jaxcrn

    if spec.bngl:
        from pysb.importers.bngl import model_from_bngl

        if not bngl_dir:
            raise SystemExit(
                f"{spec.module} is read from {spec.bngl}: pass --bngl-dir, the "
                "Models2 folder of a BioNetGen source tree (github.com/RuleWorld/"
                "bionetgen, bng2/Models2)."
            )
        model = model_from_bngl(os.path.join(bngl_dir, spec.bngl))
        origin = BNGL_SOURCE.format(file=spec.bngl, commit=commit or "?")
    else:
        model = importlib.import_module(f"pysb.examples.{spec.module}").model
        origin = (
            f"PySB's example pysb.examples.{spec.module} (BSD 2-clause licence, "
            "copyright the PySB developers)"
        )
    generate_equations(model)
    crn, names, dropped = to_crn(spec, model)
    laws = {input_name(p): tuple(law.split()) for p, law in spec.inputs.items()}
    samples = {k: (v[0], float(v[1]), float(v[2])) for k, v in laws.items()}
    check = None
    if check_samples:
        x = peers.general_inputs(samples, check_samples, 0, spec.name)
        net_spec = peers.network_spec(crn)
        ours = peers.scipy_simulator(net_spec, "Radau", spec.t1, 1e-10, 1e-10)
        y_ours = np.asarray([ours(row)[0] for row in x])
        y_rr = roadrunner_sbml_states(model, spec, names, crn.inputs, x, 1e-10, 1e-10)[
            :, [names.index(s) for s in net_spec["species"]]
        ]  # the .crn's order
        c = peers.check_states(y_ours, y_rr, 1e-6, 1e-4, 1e-8)
        check = dict(samples=check_samples, max_scaled_err=c["max_scaled_err"])
        print(
            f"{spec.name}: {len(names)} species, {len(crn.reactions)} reactions; "
            f"scipy on the .crn vs libRoadRunner on PySB's SBML: max scaled error "
            f"{c['max_scaled_err']:.2e}",
            file=sys.stderr,
        )
        if not c["passed"]:
            raise SystemExit(
                f"{spec.name}: the conversion disagrees with PySB's SBML under "
                f"libRoadRunner (max scaled error {c['max_scaled_err']:.2e} > 1e-6)"
            )
    text = header(spec, model, crn, check, dropped, origin) + jaxcrn.format_crn(crn)
    path = os.path.join(out_dir, spec.name + ".crn")
    if jaxcrn.parse_crn(text) != crn:
        raise SystemExit(f"{spec.name}: the .crn text does not parse back")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--models",
        help="comma-separated (default: all; the BioNetGen files with --bngl-dir)",
    )
    ap.add_argument("--check-samples", type=int, default=5)
    ap.add_argument("--dir", default=peers.CORPUS_DIR)
    ap.add_argument(
        "--bngl-dir", help="BioNetGen's bng2/Models2 folder (egfr_net, fceri_ji)"
    )
    ap.add_argument(
        "--bngl-commit", default="", help="the BioNetGen commit, for the header"
    )
    args = ap.parse_args(argv)
    os.environ["BNGPATH"] = bng_path()
    import jax

    jax.config.update("jax_enable_x64", True)
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    else:
        wanted = [m.module for m in MODELS if args.bngl_dir or not m.bngl]
    by_module = {m.module: m for m in MODELS}
    bad = [m for m in wanted if m not in by_module]
    if bad:
        raise SystemExit(f"--models: {bad} not in {', '.join(by_module)}")
    for m in wanted:
        spec = by_module[m]
        path = convert(
            spec, args.check_samples, args.dir, args.bngl_dir, args.bngl_commit
        )
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
