"""Grouping strategies partition every weight matrix exactly once; custom specs are checked."""

from __future__ import annotations

import json

import pytest
from torch import nn

from reaction_nmt.compress import STRATEGIES, CompressError, partition, read_spec
from reaction_nmt.compress.evaluate import working_copy
from reaction_nmt.compress.groups import group_aliases, transformer_groups


def weight_matrices(model: nn.Module) -> dict[int, str]:
    """Every distinct weight matrix of the model (shared ones once)."""
    out = {}
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            out.setdefault(id(p), name)
    return out


@pytest.fixture(scope="module")
def working(evaluator):
    return working_copy(evaluator.model)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_strategies_partition_every_weight_once(working, strategy):
    groups = transformer_groups(working)
    sets = partition(groups, strategy)
    members = [m for names in sets.values() for m in names]
    assert len(members) == len(set(members)) == len(groups)
    covered = [id(working.get_submodule(m).weight) for m in members]
    assert sorted(covered) == sorted(weight_matrices(working))
    expected_sets = {"global": 1, "matrix": len(groups)}
    if strategy in expected_sets:
        assert len(sets) == expected_sets[strategy]


def test_tags_and_set_names(working):
    groups = {g.name: g for g in transformer_groups(working)}
    assert groups["encoder.transformer.0.self_attn.linear_query"].tags == ("attn_q", "enc0")
    assert groups["decoder.transformer_layers.1.context_attn.final_linear"].tags == (
        "attn_o",
        "dec1",
    )
    assert groups["decoder.transformer_layers.0.feed_forward.w_2"].tags == ("ff", "dec0")
    assert groups["generator"].tags == ("generator", "generator")
    # shared embeddings: one group, both names as aliases
    emb = [g for g in groups.values() if g.tags[0] == "embeddings"]
    assert len(emb) == 1
    assert len(group_aliases(working)[emb[0].name]) == 2
    assert set(partition(list(groups.values()), "type")) == {
        "embeddings", "attn_q", "attn_k", "attn_v", "attn_o", "ff", "generator"
    }  # fmt: skip
    lt = partition(list(groups.values()), "layer_type")
    assert lt["enc1/attn_v"] == ["encoder.transformer.1.self_attn.linear_values"]
    assert len(lt["dec0/attn_q"]) == 2  # self- and context attention
    assert set(partition(list(groups.values()), "layer")) == {
        "embeddings", "enc0", "enc1", "dec0", "dec1", "generator"
    }  # fmt: skip


def test_custom_spec(working, tmp_path):
    groups = transformer_groups(working)
    aliases = group_aliases(working)
    spec = {
        "attention": ["*_attn.linear_*.weight", "*_attn.final_linear.weight"],
        "ff": ["*.feed_forward.*"],
        "io": ["decoder.embeddings.*", "generator.weight"],  # the decoder's name of the tied matrix
    }
    sets = partition(groups, spec, aliases)
    assert sum(len(v) for v in sets.values()) == len(groups)
    assert len(sets["io"]) == 2
    path = tmp_path / "spec.yaml"
    path.write_text("attention: ['*attn*']\nrest: ['*']\n")
    with pytest.raises(CompressError, match="matched by two sets"):
        partition(groups, read_spec(path), aliases)
    with pytest.raises(CompressError, match="matched by no set: generator"):
        partition(groups, {"all": ["encoder.*", "decoder.*"]}, aliases)
    with pytest.raises(CompressError, match="sets matching nothing: ghost"):
        partition(groups, {"all": ["*"], "ghost": ["nothing.*"]}, aliases)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert read_spec(tmp_path / "spec.json") == spec
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CompressError, match="cannot be read"):
        read_spec(tmp_path / "bad.json")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(CompressError, match="expected a mapping"):
        read_spec(tmp_path / "list.yaml")
    with pytest.raises(CompressError, match="does not exist"):
        read_spec(tmp_path / "missing.yaml")
    with pytest.raises(CompressError, match="unknown grouping strategy"):
        partition(groups, "per-head")


def test_yaml_spec_errors_are_one_line_with_line_and_column(tmp_path):
    bad = tmp_path / "spec.yaml"
    bad.write_text("attention: [encoder.*, decoder.*\nfeed_forward: - x\n")
    with pytest.raises(CompressError) as err:
        read_spec(bad)
    assert str(err.value) == (
        f"grouping spec {bad} cannot be read: line 2, column 13: expected ',' or ']', but got "
        "':' (while parsing a flow sequence from line 1, column 12)"
    )
    bad.write_text("a: '\x07'\n")
    with pytest.raises(CompressError) as err:
        read_spec(bad)
    assert str(err.value) == (
        f"grouping spec {bad} cannot be read: character 5: unacceptable character #x0007: "
        "special characters are not allowed"
    )
