"""jaxcrn: compile binary-weight ReLU networks to rate-independent chemical reaction
networks, and simulate them fast with JAX and diffrax."""

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


__version__ = "0.1.0"
