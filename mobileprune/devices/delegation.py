"""How much of a lowered program XNNPACK runs, from ExecuTorch's own accounting
(``executorch.devtools.backend_debug.get_delegation_info``).

"Compute ops" leaves out the bookkeeping nodes that never do arithmetic (``getitem`` reading a
delegate's outputs, views and shape queries): a program whose only non-delegated nodes are those
is fully delegated as far as speed is concerned. Their names are still listed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Op types (as get_delegation_info names them) that move no data through arithmetic.
BOOKKEEPING = {"getitem", "sym_size", "sym_numel", "alloc", "view_copy", "aten_view_copy_default",
               "aten_squeeze_copy_dims", "aten_unsqueeze_copy_default", "aten_alias_copy_default",
               "dim_order_ops__clone_dim_order_default"}


@dataclass
class Delegation:
    delegated_share: float  # of compute ops
    delegated_ops: int
    non_delegated_ops: int  # compute ops left to portable kernels
    subgraphs: int
    not_delegated: dict = field(default_factory=dict)  # op type -> count (compute and bookkeeping)

    def to_dict(self) -> dict:
        return asdict(self)


def delegation_of(edge_manager) -> Delegation:
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge_manager.exported_program().graph_module)
    delegated = non_delegated = 0
    left_out = {}
    for op_type, row in info.delegation_by_operator.items():
        compute = op_type not in BOOKKEEPING
        if row.non_delegated:
            left_out[op_type] = row.non_delegated
        if compute:
            delegated += row.delegated
            non_delegated += row.non_delegated
    total = delegated + non_delegated
    return Delegation(delegated / total if total else 1.0, delegated, non_delegated,
                      info.num_delegated_subgraphs, dict(sorted(left_out.items())))
