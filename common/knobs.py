"""The command-line model knobs (--filters, --kernel-size, --dense, --dropout, --batch-norm): an
architecture's values as the knobs read them, and `customize`, which applies them to an ArchSpec.
Framework-free; both processes may import it.
"""

from __future__ import annotations

from dataclasses import replace

from common.errors import UserError
from common.specs import LINEAR, POOLS, ArchSpec, LayerSpec, layer

# The command-line knobs (--filters, --kernel-size, --dense, --dropout, --batch-norm) edit the
# layer list through its structure: the layers before the flatten (or global_avgpool) form conv
# blocks, each a run of conv units (a conv and what follows it up to the next conv or pool) closed
# by a pool and what follows the pool; after the flatten come dense units (a dense layer and what
# follows it up to the next one). New blocks and units copy the preset's last ones.


# The command-line knobs (--filters, --kernel-size, --dense, --dropout, --batch-norm) edit the
# layer list through its structure: the layers before the flatten (or global_avgpool) form conv
# blocks, each a run of conv units (a conv and what follows it up to the next conv or pool) closed
# by a pool and what follows the pool; after the flatten come dense units (a dense layer and what
# follows it up to the next one). New blocks and units copy the preset's last ones.


def _head_start(layers: tuple[LayerSpec, ...]) -> int:
    """Index of the flatten (or global_avgpool): the dense head starts there."""
    return next((i for i, s in enumerate(layers) if s.type in ("flatten", "global_avgpool")),
                len(layers))


def _split(layers: tuple[LayerSpec, ...]):
    """-> (before the first conv, blocks [(units, tail)], head from the flatten on)."""
    end = _head_start(layers)
    features, head = layers[:end], list(layers[end:])
    first = next((i for i, s in enumerate(features) if s.type == "conv"), len(features))
    blocks: list[tuple[list[list[LayerSpec]], list[LayerSpec]]] = []
    units: list[list[LayerSpec]] = []
    tail: list[LayerSpec] = []
    for s in features[first:]:
        if s.type == "conv":
            if tail:  # a pool closed the block before
                blocks.append((units, tail))
                units, tail = [], []
            units.append([s])
        elif s.type in POOLS or tail:
            tail.append(s)
        else:
            units[-1].append(s)
    if units:
        blocks.append((units, tail))
    return list(features[:first]), blocks, head


def _dense_units(head: list[LayerSpec]) -> tuple[list[LayerSpec], list[list[LayerSpec]]]:
    """-> (the flatten and what precedes the first dense layer, dense units)."""
    lead: list[LayerSpec] = []
    units: list[list[LayerSpec]] = []
    for s in head:
        if s.type == "dense":
            units.append([s])
        elif units:
            units[-1].append(s)
        else:
            lead.append(s)
    return lead, units


def _joined(parts) -> tuple[LayerSpec, ...]:
    return tuple(s for part in parts for s in part)


def conv_filters(arch: ArchSpec) -> tuple[tuple[int, ...], ...]:
    """The --filters value that describes the model: ((32, 64), (64, 128)) for 32,64/64,128."""
    return tuple(tuple(u[0].filters for u in units) for units, _ in _split(arch.layers)[1])


def conv_kernel(arch: ArchSpec) -> int | None:
    """The first conv's kernel size (what --kernel-size sets for every conv); None: no conv."""
    return next((s.kernel for s in arch.layers if s.type == "conv"), None)


def hidden_dense(arch: ArchSpec) -> tuple[int, ...]:
    """The units of each dense layer of `arch`, in order (the classifier, which layer_table adds,
    is not listed)."""
    return tuple(s.units for s in arch.layers if s.type == "dense")


def dense_dropout(arch: ArchSpec) -> float:
    """The dropout rate after the first hidden dense layer (what --dropout sets); 0: none."""
    units = _dense_units(list(arch.layers[_head_start(arch.layers):]))[1]
    return next((s.rate for s in units[0] if s.type == "dropout"), 0.0) if units else 0.0


def conv_batch_norm(arch: ArchSpec) -> bool:
    """Whether every conv is directly followed by batch norm (what --batch-norm makes true)."""
    layers = arch.layers
    convs = [i for i, s in enumerate(layers) if s.type == "conv"]
    return bool(convs) and all(i + 1 < len(layers) and layers[i + 1].type == "batchnorm"
                               for i in convs)


def parse_filters(text: str) -> tuple[tuple[int, ...], ...]:
    """'32,64/64,128' -> ((32, 64), (64, 128)): ',' between convs, '/' between the groups of
    convs that a pool closes."""
    try:
        blocks = tuple(tuple(int(f) for f in b.split(",")) for b in text.split("/"))
    except ValueError:
        raise UserError(
            f"--filters {text!r}: expected integers, ',' between convs and '/' between the "
            "groups of convs that a pool closes, e.g. 32,64/64,128"
        ) from None
    if not blocks or any(f <= 0 for b in blocks for f in b):
        raise UserError(f"--filters {text!r}: filter counts must be positive integers")
    return blocks


def customize(
    arch: ArchSpec,
    filters: tuple[tuple[int, ...], ...] | None = None,
    kernel_size: int | None = None,
    dense: tuple[int, ...] | None = None,
    dropout: float | None = None,
    batch_norm: bool | None = None,
) -> ArchSpec:
    """Apply the command-line knobs to a model; a knob the model has no place for is one line."""
    layers = arch.layers
    has_conv = any(s.type == "conv" for s in layers)
    for flag, given in (("--filters", filters), ("--kernel-size", kernel_size),
                        ("--batch-norm", batch_norm)):
        if given and not has_conv:
            raise UserError(f"{flag}: model {arch.name!r} has no conv layers to apply it to")
    if filters is not None:
        before, blocks, head = _split(layers)
        new = []
        for i, group in enumerate(filters):
            units, tail = blocks[min(i, len(blocks) - 1)]
            for j, f in enumerate(group):
                unit = units[min(j, len(units) - 1)]
                new += [replace(unit[0], filters=f), *unit[1:]]
            new += tail
        layers = _joined((before, new, head))
    if kernel_size is not None:
        if kernel_size <= 0:
            raise UserError("--kernel-size must be a positive integer")
        layers = tuple(replace(s, kernel=kernel_size) if s.type == "conv" else s for s in layers)
    if batch_norm is True:  # conv (no activation, no bias) -> batch norm -> the conv's activation
        new = []
        for i, s in enumerate(layers):
            if s.type == "conv" and not (i + 1 < len(layers) and layers[i + 1].type == "batchnorm"):
                # the bias is dropped explicitly: batch norm's mean subtraction cancels it
                new += [replace(s, activation=LINEAR, bias=False), layer("batchnorm")]
                new += [layer("activation", activation=s.activation)] if s.activation != LINEAR else []
            else:
                new.append(s)
        layers = tuple(new)
    elif batch_norm is False:  # a layer whose bias was dropped for its batch norm gets it back
        layers = tuple(replace(s, bias=True) if s.bias is False and i + 1 < len(layers)
                       and layers[i + 1].type == "batchnorm" else s
                       for i, s in enumerate(layers) if s.type != "batchnorm")
    if dense is not None:
        if any(d <= 0 for d in dense):
            raise UserError("--dense sizes must be positive integers")
        start = _head_start(layers)
        lead, units = _dense_units(list(layers[start:]))
        new = []
        for i, d in enumerate(dense):
            if i < len(units):
                unit = units[i]
            elif units:  # a copy of the last dense unit, without its dropout (--dropout: one)
                unit = [s for s in units[-1] if s.type != "dropout"]
            else:
                unit = [layer("dense", units=d)]
            new += [replace(unit[0], units=d), *unit[1:]]
        layers = _joined((layers[:start], lead, new))
    if dropout is not None:
        if not 0.0 <= dropout < 1.0:
            raise UserError("--dropout must be in [0, 1)")
        start = _head_start(layers)
        lead, units = _dense_units(list(layers[start:]))
        if not units:
            raise UserError(f"--dropout: model {arch.name!r} has no hidden dense layer (the "
                            "dropout goes after the first one); add one with --dense")
        first = units[0]
        if any(s.type == "dropout" for s in first):
            first = [replace(s, rate=dropout) if s.type == "dropout" else s for s in first]
        else:
            first = [*first, layer("dropout", rate=dropout)]
        first = [s for s in first if not (s.type == "dropout" and s.rate == 0.0)]
        layers = _joined((layers[:start], lead, first, *units[1:]))
    return replace(arch, layers=layers)
