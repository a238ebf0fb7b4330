import fnmatch

import pytest

from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.config.architectures import VGG16_CONVS, prunable_layers

from tests.conftest import ROOT


SHIPPED = sorted(path.name for path in (ROOT / "configs").glob("*.yaml")
                 if not path.name.startswith("experiment_"))  # experiment files: test_experiment


def test_every_network_has_a_shipped_config():
    assert {"resnet20_cifar10.yaml", "vgg16_cifar10.yaml", "conv2_cifar10.yaml",
            "conv4_cifar10.yaml", "conv6_cifar10.yaml"} <= set(SHIPPED)


def test_vgg16_cifar10_leaves_its_output_layer_unpruned_as_openlth():
    cfg = config_lib.load(ROOT / "configs" / "vgg16_cifar10.yaml")
    kept = [name for name in prunable_layers("vgg16_cifar")
            if any(fnmatch.fnmatchcase(name, p) for p in cfg.imp.prunable_layers)]
    assert kept == list(VGG16_CONVS)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_validate(name):
    """Every value is valid; the folders they point at are the user's to supply."""
    cfg = config_lib.load(ROOT / "configs" / name)
    assert list(cfg.to_dict()) == ["run", "data", "train", "imp", "flops", "report"]


def test_defaults_fill_missing_keys():
    cfg = config_lib.from_dict({"imp": {"prune_rate": 0.3}})
    assert cfg.imp.prune_rate == 0.3 and cfg.train.arch == "lenet"


def test_overrides_are_parsed_as_yaml(tmp_path):
    cfg = config_lib.load(ROOT / "configs" / "quickstart.yaml",
                          ["imp.prune_rate=0.5", "data.image_size=[16, 16]", "imp.scope=layerwise"])
    assert cfg.imp.prune_rate == 0.5 and cfg.data.image_size == [16, 16]
    assert cfg.imp.scope == "layerwise"


def test_round_trip_through_yaml():
    cfg = config_lib.from_dict({"imp": {"layer_rates": {"output": 0.1}}})
    assert config_lib.loads(config_lib.to_yaml(cfg)) == cfg


BAD = [
    ({"train": {"arch": "resnet"}}, "train.arch: unknown value 'resnet'; allowed: lenet"),
    ({"train": {"arch": "lenett"}}, "Did you mean 'lenet'?"),
    ({"imp": {"prune_rate": 1.5}}, "imp.prune_rate: invalid value 1.5; expected a number in (0, 1)"),
    ({"imp": {"prune_rate": 0}}, "imp.prune_rate: invalid value 0"),
    ({"train": {"epochs": -1}}, "train.epochs: invalid value -1; expected an integer from 1 to 10,000"),
    ({"train": {"epochs": "ten"}}, "train.epochs: invalid value 'ten'"),
    ({"imp": {"prune_rte": 0.2}}, "imp.prune_rte: unknown key. Did you mean 'prune_rate'?"),
    ({"trian": {}}, "trian: unknown key. Did you mean 'train'?"),
    ({"imp": {"scope": "local"}}, "imp.scope: unknown value 'local'; allowed: global, layerwise"),
    ({"imp": {"rewind": "epoch:5"}, "train": {"epochs": 2}},
     "imp.rewind: invalid value 'epoch:5'; the rewind epoch must be below train.epochs (2)"),
    ({"imp": {"rewind": "late"}}, "imp.rewind: invalid value 'late'; allowed: init, epoch:K (K < train.epochs) or step:N"),
    ({"imp": {"controls": ["random_reinit", "shuffle"]}}, "imp.controls: unknown value 'shuffle'"),
    ({"imp": {"target_sparsity": 1.2}}, "imp.target_sparsity: invalid value 1.2"),
    ({"imp": {"layer_rates": {"output": 2}}}, "imp.layer_rates.output: invalid value 2"),
    ({"data": {"source": "s3"}}, "data.source: unknown value 's3'; allowed: bundled, folder, keras"),
    ({"data": {"source": "folder"}}, "data.data_dir: invalid value None; source 'folder' needs"),
    ({"data": {"image_size": [4, 4]}}, "data.image_size: invalid value [4, 4]"),
    ({"data": {"channels": 2}}, "data.channels: unknown value 2; allowed: 1, 3"),
    ({"data": {"train_split": 0.8, "val_split": 0.3}},
     "data.val_split: invalid value 0.3; train_split + val_split must be below 1"),
    ({"data": {"limit_total": 5}}, "data.limit_total: invalid value 5; expected an integer from 20 to"),
    ({"train": {"learning_rate": -0.1}}, "train.learning_rate: invalid value -0.1"),
    ({"train": {"optimizer": "rmsprop"}},
     "train.optimizer: unknown value 'rmsprop'; allowed: adam, sgd, adamw"),
    ({"train": {"weights": "imagenet"}}, "train.weights: invalid value 'imagenet'; only vgg16"),
    ({"train": {"arch": "vgg16"}}, "data.channels: invalid value 1; vgg16 needs 3 channels"),
    ({"run": {"device": "tpu"}}, "run.device: invalid value 'tpu'; allowed: cpu, gpu, gpu:N, auto"),
    ({"run": {"seed": -3}}, "run.seed: invalid value -3"),
    ({"run": "fast"}, "run: expected a mapping of keys"),
    ([1, 2], "config: expected a mapping"),
]


@pytest.mark.parametrize("raw,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_config_is_refused_with_its_message(raw, message):
    with pytest.raises(ConfigError) as info:
        config_lib.from_dict(raw)
    assert message in str(info.value)


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("imp:\n  prune_rate: [0.2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML"):
        config_lib.load(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: not found"):
        config_lib.load(tmp_path / "nope.yaml")


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        config_lib.apply_overrides({}, ["imp.prune_rate"])
