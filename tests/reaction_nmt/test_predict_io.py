"""Issue 34, item 5: ``reaction-nmt predict --input`` reads text files and CSV/TSV columns with
their line numbers, writes JSONL/CSV records (error rows included) atomically to --output, and
fans one translation out to repeated inputs."""

from __future__ import annotations

import csv
import io
import json

import pytest

from chemprune.molecules.chem.inputs import InputFileError
from reaction_nmt.cli import main
from reaction_nmt.predict_io import (
    ARGUMENTS,
    RECORD_FIELDS,
    InputRow,
    error_record,
    gather_rows,
    prediction_records,
    read_input_rows,
    read_table_rows,
    read_text_rows,
    render,
    render_csv,
    render_jsonl,
    write_output,
)

RANKED = [
    {"rank": 1, "smiles": "CCO", "valid": True, "score": -0.25, "probability": 0.7788},
    {"rank": 2, "smiles": "C(", "valid": False, "score": -1.5, "probability": 0.2231},
]


def test_text_rows_keep_the_files_line_numbers(tmp_path):
    path = tmp_path / "r.txt"
    path.write_bytes(b"\xef\xbb\xbf# header comment\nCC(=O)Cl.OCC\n\n  CCO>O  \nCCO\n")
    rows = read_text_rows(path)
    assert [(r.line, r.text) for r in rows] == [(2, "CC(=O)Cl.OCC"), (4, "CCO>O"), (5, "CCO")]
    assert rows[0].source == str(path) and rows[0].where() == f"line 2 of {path}"
    (row,) = read_text_rows("-", stdin=io.BytesIO(b"\nCCO\n"))
    assert (row.source, row.line, row.text) == ("<stdin>", 2, "CCO")


def test_csv_rows_take_the_named_column_with_header_as_line_1(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(
        b'\xef\xbb\xbfid,rxn,note\n1,CCO.CC(=O)O,a\n\n2,"CC(=O)Cl.NCC","two\nlines"\n3,,empty\n4\n'
        b"5,CCN,x\n"
    )
    rows = read_table_rows(path, "rxn")
    assert [(r.line, r.text, r.error) for r in rows] == [
        (2, "CCO.CC(=O)O", None),
        (4, "CC(=O)Cl.NCC", None),  # its quoted note runs over lines 4 and 5
        (6, "", "column 'rxn' is empty"),
        (7, "", "has 1 field, no column 'rxn' (the header has 3)"),
        (8, "CCN", None),
    ]
    assert read_input_rows(path, "id")[0].text == "1"  # a .csv name or --column: a table


def test_a_one_column_table_needs_no_column_and_tsv_splits_on_tabs(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("smiles\nCCO\nCCN\n")
    assert [(r.line, r.text) for r in read_input_rows(one)] == [(2, "CCO"), (3, "CCN")]
    tsv = tmp_path / "r.tsv"
    tsv.write_text("rxn\tyield\nCC(=O)O.OCC\t0.5\n")
    assert [(r.line, r.text) for r in read_input_rows(tsv, "rxn")] == [(2, "CC(=O)O.OCC")]
    # another name with --column: the header says whether it is tab-separated
    piped = io.BytesIO(b"rxn\tyield\nCCO\t1\n")
    assert [r.text for r in read_input_rows("-", "rxn", stdin=piped)] == ["CCO"]


def test_missing_or_ambiguous_column_is_one_line_naming_the_columns(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,rxn\n1,CCO\n")
    with pytest.raises(InputFileError, match=r"has no column 'smiles'; its columns: 'id', 'rxn'"):
        read_table_rows(path, "smiles")
    with pytest.raises(InputFileError, match=r"has 2 columns \('id', 'rxn'\); choose one"):
        read_table_rows(path)
    path.write_text("rxn\n\n")
    with pytest.raises(InputFileError, match="has a header but no rows"):
        read_table_rows(path)
    with pytest.raises(InputFileError, match="--column needs --input"):
        gather_rows(["CCO"], None, "rxn")
    with pytest.raises(InputFileError, match="no reactions given"):
        gather_rows([], None)


def test_arguments_come_first_numbered_by_position(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("CCN\n")
    rows = gather_rows(["CCO", "CCC"], path)
    assert [(r.source, r.line, r.text) for r in rows] == [
        (ARGUMENTS, 1, "CCO"),
        (ARGUMENTS, 2, "CCC"),
        (str(path), 1, "CCN"),
    ]
    assert rows[1].where() == "argument 2"


def test_jsonl_and_csv_round_trip_with_error_rows():
    good = InputRow("r.txt", 3, "CCO.CC")
    bad = InputRow("r.txt", 7, "C1CC")
    records = prediction_records(good, RANKED) + [error_record(bad, "input 'C1CC': bad ring")]
    parsed = [json.loads(line) for line in render_jsonl(records).splitlines()]
    assert parsed == records and list(parsed[0]) == list(RECORD_FIELDS)
    assert [(r["line"], r["rank"], r["product"], r["valid"]) for r in parsed] == [
        (3, 1, "CCO", True),
        (3, 2, "C(", False),
        (7, None, None, False),
    ]
    assert parsed[2]["error"] == "input 'C1CC': bad ring" and parsed[2]["score"] is None
    table = list(csv.DictReader(io.StringIO(render_csv(records))))
    assert [r["line"] for r in table] == ["3", "3", "7"]
    assert table[0]["product"] == "CCO" and float(table[0]["score"]) == -0.25
    assert table[1]["valid"] == "false" and table[0]["valid"] == "true"
    assert table[2]["product"] == "" and table[2]["error"] == "input 'C1CC': bad ring"
    # render fans answers out per row and keeps the older --json list without error rows
    text = render("jsonl", [good, bad, good], [RANKED, "oops", RANKED])
    assert [json.loads(x)["line"] for x in text.splitlines()] == [3, 3, 7, 3, 3]
    listed = json.loads(render("json", [good, bad], [RANKED, "oops"]))
    assert listed == [{"input": "CCO.CC", "products": RANKED}]


def test_write_output_replaces_the_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "sub" / "preds.jsonl"
    write_output("one\n", out)
    write_output("two\n", out)
    assert out.read_text() == "two\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["preds.jsonl"]
    stream = io.StringIO()
    write_output("x\n", None, stdout=stream)
    assert stream.getvalue() == "x\n"


def test_predict_file_with_a_bad_line_and_a_repeat(tiny_run, tmp_path, capsys):
    model = str(tiny_run / "model_step_10.pt")
    path = tmp_path / "reactions.txt"
    path.write_text("# reactions\nCC(=O)O.NCC\nCC(=O)O.C1CC\n\nCC(=O)O.NCC\nCC(=O)O.OCC\n")
    argv = ["predict", "--model", model, "--input", str(path), "--format", "jsonl"]
    argv += ["--max-length", "40", "--beam-size", "2", "--n-best", "2"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"reaction-nmt: error: line 3 of {path}: input 'CC(=O)O.C1CC': invalid SMILES 'C1CC'"
    )
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert sorted({r["line"] for r in records}) == [2, 3, 5, 6]
    by_line = {n: [r for r in records if r["line"] == n] for n in (2, 3, 5, 6)}
    (bad,) = by_line[3]
    assert bad["error"] and bad["product"] is None and bad["input"] == "CC(=O)O.C1CC"
    for n in (2, 5, 6):
        assert [r["rank"] for r in by_line[n]] == list(range(1, len(by_line[n]) + 1))
        assert by_line[n] and all(r["error"] is None for r in by_line[n])
    strip = [{k: v for k, v in r.items() if k != "line"} for r in by_line[2]]
    assert strip == [{k: v for k, v in r.items() if k != "line"} for r in by_line[5]]

    # the same as CSV to --output, with the library's log lines; a column of a CSV input
    table = tmp_path / "reactions.csv"
    table.write_text("id,rxn\na,CC(=O)O.NCC\nb,CC(=O)O.NCC\n")
    out = tmp_path / "preds.csv"
    argv = ["predict", "--model", model, "--input", str(table), "--column", "rxn"]
    argv += ["--format", "csv", "--output", str(out), "--max-length", "40", "--verbose"]
    assert main([*argv, "--beam-size", "2", "--n-best", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "INFO" in captured.err  # --verbose: OpenNMT-py's log
    rows = list(csv.DictReader(out.open(newline="")))
    assert {r["line"] for r in rows} == {"2", "3"} and all(r["product"] for r in rows)
    assert rows[0]["source"] == str(table) and rows[0]["input"] == "CC(=O)O.NCC"


def test_predict_refuses_unusable_inputs_and_outputs_before_loading(tmp_path, capsys):
    missing = tmp_path / "model.pt"  # never loaded: inputs and the output are checked first
    table = tmp_path / "r.csv"
    table.write_text("id,rxn\n1,CCO\n")
    argv = ["predict", "--model", str(missing), "--input", str(table)]
    assert main([*argv, "--column", "smiles"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no column 'smiles'; its columns: 'id', 'rxn'" in err
    assert main(["predict", "--model", str(missing), "--input", str(tmp_path / "none.txt")]) == 2
    assert "none.txt does not exist" in capsys.readouterr().err
    assert main([*argv, "--column", "rxn", "--output", str(table)]) == 2
    assert "is the same file as --input" in capsys.readouterr().err
    assert table.read_text() == "id,rxn\n1,CCO\n"
