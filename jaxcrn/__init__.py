"""jaxcrn: compile binary-weight ReLU networks to rate-independent chemical reaction
networks, and simulate them fast with JAX and diffrax."""

from typing import TYPE_CHECKING


# The public API, imported lazily: `import jaxcrn` (and so `jaxcrn --help`) does not
# import JAX; the first use of a name imports its module. Type checkers and
# documentation tools read the imports below as they are; at run time `__getattr__`
# reads the same lines (one list of names, never two).
if TYPE_CHECKING:
    from . import datasets as datasets, plot as plot, scan as scan
    from ._batch import (
        BatchPlan as BatchPlan,
        plan_batch as plan_batch,
        simulate_batch as simulate_batch,
    )
    from ._compile_cache import use_compilation_cache as use_compilation_cache
    from ._crn import (
        CRN as CRN,
        CRNSyntaxError as CRNSyntaxError,
        Reaction as Reaction,
        Signal as Signal,
        format_crn as format_crn,
        load_crn as load_crn,
        parse_crn as parse_crn,
        save_crn as save_crn,
    )
    from ._differentiable import (
        simulate_differentiable as simulate_differentiable,
    )
    from ._fit import (
        Experiment as Experiment,
        FitResult as FitResult,
        fit_rates as fit_rates,
    )
    from ._kinetics import (
        AbstractKinetics as AbstractKinetics,
        DenseKinetics as DenseKinetics,
        LayeredKinetics as LayeredKinetics,
        SparseKinetics as SparseKinetics,
        Stoichiometry as Stoichiometry,
        layered_structure as layered_structure,
    )
    from ._network import (
        MassActionNetwork as MassActionNetwork,
        compile_crn as compile_crn,
    )
    from ._nn import (
        BinaryDense as BinaryDense,
        BinaryMLP as BinaryMLP,
        TrainConfig as TrainConfig,
        accuracy as accuracy,
        forward as forward,
        init_model as init_model,
        init_opt_state as init_opt_state,
        load_checkpoint as load_checkpoint,
        load_metadata as load_metadata,
        load_model as load_model,
        load_params as load_params,
        make_step as make_step,
        preset as preset,
        quantize as quantize,
        quantized_params as quantized_params,
        save_checkpoint as save_checkpoint,
        save_model as save_model,
        squared_hinge_loss as squared_hinge_loss,
        train as train,
    )
    from ._nn2crn import (
        NoncompetitiveCheck as NoncompetitiveCheck,
        ReactionCounts as ReactionCounts,
        bind_inputs as bind_inputs,
        count_reactions as count_reactions,
        is_noncompetitive as is_noncompetitive,
        network_params as network_params,
        nn_to_crn as nn_to_crn,
        reduce_crn as reduce_crn,
        stable_state as stable_state,
    )
    from ._sbml import (
        SBMLImportError as SBMLImportError,
        SBMLModel as SBMLModel,
        load_sbml as load_sbml,
        read_sbml as read_sbml,
        save_sbml as save_sbml,
        to_sbml as to_sbml,
    )
    from ._simulate import (
        ConvergenceTimes as ConvergenceTimes,
        SimulationResult as SimulationResult,
        Status as Status,
        ToleranceWarning as ToleranceWarning,
        convergence_times as convergence_times,
        simulate as simulate,
    )
    from ._solvers import Rodas5P as Rodas5P
    from ._trainable import trainable_crn as trainable_crn
    from ._verify import (
        RateSample as RateSample,
        VerifyReport as VerifyReport,
        verify as verify,
    )


def _public_names() -> dict[str, tuple[str, str | None]]:
    """{public name: (module, attribute or None for a module)} from the block above."""
    import ast

    with open(__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
    )
    names: dict[str, tuple[str, str | None]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names:
            if node.module is None:  # from . import datasets
                names[alias.asname or alias.name] = ("." + alias.name, None)
            else:
                names[alias.asname or alias.name] = ("." + node.module, alias.name)
    return names


_PUBLIC = _public_names()
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name == "__version__":  # from the installed package's metadata
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("jaxcrn")
        except PackageNotFoundError:  # pragma: no cover - run from a bare tree
            value = "0+unknown"
        globals()["__version__"] = value
        return value
    if name not in _PUBLIC:
        raise AttributeError(f"module 'jaxcrn' has no attribute {name!r}")
    import importlib

    module_name, attribute = _PUBLIC[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
