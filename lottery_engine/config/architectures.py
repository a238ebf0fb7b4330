"""Every network a config may name, one entry each: the one place that lists architectures.

An entry holds what is known without TensorFlow (the dashboard reads it and must never load TF):
the name, what the Launch form shows, the prunable layers, what the input must be, and which
config checks apply. Its builder is named, not imported (`package.module:function`, resolved by
models/registry.py when a run builds it), because config sits below models and must not load
Keras. Adding a network is a builder in a new file plus one `Architecture(...)` line below, or
`register(...)` from your own code (docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# VGG-16's 13 convs as Keras names them: vgg16_cifar's, and an unfrozen vgg16 base's (pruned too)
VGG16_CONVS = tuple(f"block{b}_conv{c}" for b, n in enumerate((2, 2, 3, 3, 3), start=1)
                    for c in range(1, n + 1))
RESNET20_KERNELS = ("conv", *(f"stage{s}_block{b}_{conv}" for s in (1, 2, 3) for b in (1, 2, 3)
                              for conv in ("conv1", "conv2", "shortcut")
                              if conv != "shortcut" or (s > 1 and b == 1)), "output")


@dataclass(frozen=True)
class Architecture:
    """One network. `builder` is called as `function(input_shape, num_classes, **options)`, the
    options being the train keys named in `options` (vgg16: its weights and frozen base); an
    `own` entry's as `function(train_config, input_shape, num_classes, fresh)`.

    - `prunable`: the layers IMP prunes by default, in the model's order; None for the user's
      own network, whose layers are only known once it is loaded;
    - `label`: the Launch form's option for it; None: not offered there (YAML only);
    - `min_side`: the smallest image side its poolings and strides can halve down to;
    - `channels`: the channel count it needs (vgg16's ImageNet base: 3); None: any;
    - `base`: the convs of a pretrained base: it takes `train.weights` and `train.freeze_base`,
      and these are pruned too when the base is not frozen;
    - `own`: the user's own model (a .keras file or a factory), built by models/user_model.py
      and never feature-cached (its graph need not be a chain of layers);
    - `hybrid_layer`: the layer whose pooled output `lottery hybrid` classifies by default;
    - `unit_layers`: the prunable layers whose units channel pruning may remove, where not
      every one but the output (pruning/unit_graph.py finds the same from the built model:
      tests/models/test_literature_models.py holds the two equal).
    """

    name: str
    builder: str
    prunable: tuple[str, ...] | None
    label: str | None = None
    min_side: int | None = None
    channels: int | None = None
    base: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    own: bool = False
    hybrid_layer: str | None = None
    unit_layers: tuple[str, ...] | None = None


_BUILDERS, _LITERATURE = "lottery_engine.models.builders", "lottery_engine.models.literature_models"


def _conv(name: str, convs: int, min_side: int) -> Architecture:
    """Conv-2/4/6 of Frankle & Carbin (2019): `convs` convs, then two dense layers."""
    return Architecture(name, f"{_LITERATURE}:{name}",
                        (*(f"conv_{i}" for i in range(1, convs + 1)), "dense_1", "dense_2",
                         "output"), label=name, min_side=min_side, hybrid_layer=f"conv_{convs}")


ARCHITECTURES: dict[str, Architecture] = {arch.name: arch for arch in (
    Architecture("lenet", f"{_BUILDERS}:lenet",
                 ("conv_1", "conv_2", "dense_1", "dense_2", "output"), label="lenet",
                 hybrid_layer="conv_2"),
    Architecture("lenet_300_100", f"{_BUILDERS}:lenet_300_100",
                 ("dense_1", "dense_2", "output"), label="lenet_300_100"),
    Architecture("vgg16", f"{_BUILDERS}:vgg16", ("fc1", "fc2", "output"), label="vgg16",
                 channels=3, base=VGG16_CONVS, options=("weights", "freeze_base"),
                 hybrid_layer="block3_conv3"),
    _conv("conv2", 2, 2),
    _conv("conv4", 4, 4),
    _conv("conv6", 6, 8),
    # only each block's first conv loses units: the others feed a residual Add
    Architecture("resnet20", f"{_LITERATURE}:resnet20", RESNET20_KERNELS, label="resnet20",
                 min_side=4, hybrid_layer="stage2_block3_out",
                 unit_layers=tuple(name for name in RESNET20_KERNELS if name.endswith("_conv1"))),
    Architecture("vgg16_cifar", f"{_LITERATURE}:vgg16_cifar", (*VGG16_CONVS, "output"),
                 label="vgg16_cifar", min_side=16, hybrid_layer="block3_conv3"),
    # the user's own network: a .keras file, or package.module:function
    Architecture("file", "lottery_engine.models.user_model:build", None,
                 label="my own model (.keras)", own=True),
    Architecture("factory", "lottery_engine.models.user_model:build", None, own=True),
)}


def register(arch: Architecture) -> Architecture:
    """Add a network to the registry (from your own code, before its config is read); a name
    already taken is refused, so a built-in is never replaced by accident."""
    if arch.name in ARCHITECTURES:
        raise ValueError(f"architecture {arch.name!r} is already registered")
    ARCHITECTURES[arch.name] = arch
    return arch


def names() -> tuple[str, ...]:
    """Every registered architecture's name, built-ins first, as train.arch allows them."""
    return tuple(ARCHITECTURES)


def own_names() -> tuple[str, ...]:
    """The architectures that are the user's own model (loaded and summarised before a run)."""
    return tuple(name for name, arch in ARCHITECTURES.items() if arch.own)


def prunable_layers(arch: str, freeze_base: bool = True) -> list[str] | None:
    """The layers IMP prunes by default (None: the user's own network, known once loaded); an
    unfrozen pretrained base adds its convs, in the model's order."""
    entry = ARCHITECTURES[arch]
    if entry.prunable is None:
        return None
    return [*(entry.base if freeze_base is False else ()), *entry.prunable]
