import pytest

from reaction_nmt import backend
from reaction_nmt.presets import (
    PRESETS,
    PresetError,
    build_config,
    parse_overrides,
    transformer_parameters,
)


def test_parameter_formula_matches_a_real_checkpoint(tiny_run):
    tokens = len((tiny_run / "vocab.txt").read_text().splitlines())
    vocab_size = -(-(tokens + 4) // 8) * 8  # + 4 specials, padded to a multiple of 8
    expected = transformer_parameters(PRESETS["tiny"], vocab_size=vocab_size)
    assert backend.count_parameters(tiny_run / "model_step_10.pt") == expected


def test_compact_is_at_most_a_quarter_of_mt():
    mt = transformer_parameters(PRESETS["mt"], vocab_size=80)
    compact = transformer_parameters(PRESETS["compact"], vocab_size=80)
    assert 11e6 < mt < 13e6  # the Molecular Transformer's ~12M
    assert compact <= mt / 4
    assert PRESETS["mt"]["enc_layers"] == PRESETS["mt"]["dec_layers"] == 4
    assert (PRESETS["mt"]["hidden_size"], PRESETS["mt"]["heads"]) == (256, 8)
    assert PRESETS["mt"]["transformer_ff"] == 2048


def test_overrides_opennmt_style_and_key_value():
    assert parse_overrides(["-train_steps", "10", "dropout=[0.2]", "--batch-size", "64"]) == {
        "train_steps": 10,
        "dropout": [0.2],
        "batch_size": 64,
    }
    with pytest.raises(PresetError, match="cannot read override"):
        parse_overrides(["-train_steps"])


def test_config_points_at_the_data_and_run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "src-train.txt").write_text("C C O\n" * 10)
    config = build_config(preset="compact", data_dir=data, run_dir=tmp_path / "run",
                          overrides={"train_steps": 7})  # fmt: skip
    assert config["train_steps"] == 7 and config["num_workers"] == 0
    assert config["data"]["corpus_1"]["path_src"] == str(data / "src-train.txt")
    assert "valid" not in config["data"]  # no valid split prepared
    assert config["save_model"] == str(tmp_path / "run" / "model")
    assert config["bucket_size"] == 256
    with pytest.raises(PresetError, match="unknown preset 'big'"):
        build_config(preset="big", data_dir=data, run_dir=tmp_path)


def test_override_yaml_errors_are_one_line():
    with pytest.raises(PresetError) as err:
        parse_overrides(["-dropout", "[0.2"])
    assert str(err.value) == (
        "override dropout: value '[0.2' is not valid YAML (line 1, column 5: expected ',' or "
        "']', but got '<stream end>' (while parsing a flow sequence from line 1, column 1))"
    )
