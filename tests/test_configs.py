"""Every config group composes; the resolved config has the promised keys; the Optuna search names real keys."""

from __future__ import annotations

import importlib

import pytest
import yaml
from omegaconf import OmegaConf

from audiolab.utils.config import CONF_DIR, to_container, validate_train_config

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("ddsp_*.yaml"))  # codec: tests/models/codec


def drop_hydra_node(cfg):
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg

# Top-level keys conf/train.yaml (and its defaults list) promises.
PROMISED_KEYS = {
    "task_name", "run_name", "tags", "seed", "train", "test", "ckpt_path", "init_from", "optimized_metric", "stages",
    "data", "model", "callbacks", "logger", "trainer", "paths",
}
TRAINERS = sorted(p.stem for p in (CONF_DIR / "trainer").glob("*.yaml") if p.stem != "default")
LOGGERS = sorted(p.stem for p in (CONF_DIR / "logger").glob("*.yaml") if p.stem != "default")


def _resolved(cfg) -> dict:
    return to_container(drop_hydra_node(cfg))


def test_groups_found():
    assert len(EXPERIMENTS) >= 4, EXPERIMENTS
    assert set(TRAINERS) >= {"cpu", "gpu", "ddp", "ddp_sim"}
    assert set(LOGGERS) >= {"wandb", "csv", "none"}


@pytest.mark.parametrize("debug", [False, True], ids=["full", "debug_fast"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(make_cfg, experiment, debug):
    overrides = [f"experiment={experiment}"] + (["debug=fast"] if debug else [])
    cfg = make_cfg(overrides)
    resolved = _resolved(cfg)
    assert PROMISED_KEYS <= set(resolved), PROMISED_KEYS - set(resolved)
    assert resolved["model"]["_target_"] == "audiolab.models.ddsp.module.DDSPModule"
    assert resolved["data"]["_target_"] == "audiolab.models.ddsp.data.DDSPDataModule"
    assert resolved["trainer"]["_target_"] == "lightning.pytorch.Trainer"
    # interpolations resolved against the root
    assert resolved["model"]["sample_rate"] == resolved["data"]["sample_rate"]
    assert resolved["callbacks"]["media"]["every_n_steps"] == resolved["model"]["diagnostics"]["every_n_steps"]
    assert resolved["callbacks"]["probe"]["output_dir"] == resolved["paths"]["output_dir"]
    assert resolved["optimized_metric"].startswith("probe/")
    if debug:
        assert resolved["trainer"]["max_steps"] <= 10
        assert resolved["trainer"]["accelerator"] == "cpu"
        assert resolved["data"]["crepe_model"] == "tiny"
        assert "wandb" not in (resolved["logger"] or {}), "debug=fast must not start W&B"
    validate_train_config(cfg)


def test_experiment_settings_applied(make_cfg):
    mlp = make_cfg(["experiment=ddsp_mlp"])
    assert mlp.model.decoder.backbone == "mlp"
    gru = make_cfg(["experiment=ddsp_gru"])
    assert gru.model.decoder.backbone == "gru" and gru.model.net.reverb is True
    abc = make_cfg(["experiment=ddsp_transformer_abc"])
    assert [s.name for s in abc.stages] == ["A", "B", "C"]
    for stage in abc.stages:
        for item in stage.overrides:
            key = item.split("=", 1)[0]
            assert OmegaConf.select(abc, key, default="__missing__") != "__missing__", f"stage {stage.name}: {key} not in config"


@pytest.mark.parametrize("logger", LOGGERS)
@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_logger_compose(make_cfg, trainer, logger):
    cfg = make_cfg(["experiment=ddsp_transformer", f"trainer={trainer}", f"logger={logger}"])
    resolved = _resolved(cfg)
    assert resolved["trainer"]["_target_"] == "lightning.pytorch.Trainer"
    loggers = resolved["logger"] or {}
    if logger == "none":
        assert not [v for v in loggers.values() if isinstance(v, dict) and "_target_" in v]
    else:
        assert logger in loggers and "_target_" in loggers[logger]
    if trainer == "ddp_sim":
        assert resolved["trainer"]["accelerator"] == "cpu" and resolved["trainer"]["devices"] == 2
    if trainer in ("gpu", "ddp"):
        assert resolved["trainer"]["accelerator"] == "gpu"


def test_wandb_logger_settings(make_cfg):
    cfg = make_cfg(["experiment=ddsp_transformer", "logger=wandb"])
    resolved = _resolved(cfg)
    wb = resolved["logger"]["wandb"]
    assert isinstance(wb["offline"], bool)
    assert wb["save_dir"] == resolved["paths"]["output_dir"]
    assert wb["group"] == resolved["task_name"] == "ddsp_transformer"


def test_optuna_search_names_real_keys(make_cfg):
    """The sweeper params must be keys of the composed experiment config (a typo would sweep nothing)."""
    search = yaml.safe_load((CONF_DIR / "hparams_search" / "ddsp_optuna.yaml").read_text())
    params = search["hydra"]["sweeper"]["params"]
    assert params, "hydra.sweeper.params is empty"
    cfg = make_cfg(["experiment=ddsp_transformer"])
    missing = [k for k in params if OmegaConf.select(cfg, k, default="__missing__") == "__missing__"]
    assert not missing, f"hydra.sweeper.params keys not in the experiment config: {missing}"
    assert search["optimized_metric"] == cfg.optimized_metric
    assert search["hydra"]["sweeper"]["direction"] == "minimize"


def test_optuna_search_composes_or_names_missing_plugin(make_cfg):
    try:
        importlib.import_module("hydra_plugins.hydra_optuna_sweeper")
    except ImportError:
        available = False
    else:
        available = True
    if available:
        cfg = make_cfg(["experiment=ddsp_transformer", "hparams_search=ddsp_optuna"])
        assert "optuna" in cfg.hydra.sweeper._target_.lower()
        assert cfg.optimized_metric == "probe/spectral"
    else:
        # the only reason it may not compose is the missing plugin: the error names the optuna sweeper
        with pytest.raises(Exception, match="(?i)optuna"):
            make_cfg(["experiment=ddsp_transformer", "hparams_search=ddsp_optuna"])


def test_to_container_accepts_config_with_hydra_node(make_cfg):
    cfg = make_cfg(["experiment=ddsp_transformer", "debug=fast"])
    resolved = to_container(cfg)
    assert PROMISED_KEYS <= set(resolved)
