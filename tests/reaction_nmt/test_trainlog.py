from reaction_nmt.trainlog import read_train_log


def test_learning_curve_of_a_cli_run(tiny_run):
    curves = read_train_log(tiny_run / "train.log")
    assert [r["step"] for r in curves["train"]] == [5, 10]
    assert all(r["src_tok_s"] > 0 and r["ppl"] > 1 for r in curves["train"])
    assert [v["step"] for v in curves["valid"]] == [5, 10]
    assert all(0 <= v["accuracy"] <= 100 and v["perplexity"] > 1 for v in curves["valid"])


def test_resumed_log_keeps_time_increasing(tmp_path):
    line = "[x INFO] Step {s}/ 9; acc: 50.0; ppl: 2.0; xent: 0.7; lr: 0.1; bsz: 1/1/1; 100/ 50 tok/s; {t} sec;"
    log = tmp_path / "train.log"
    log.write_text(
        "\n".join([line.format(s=5, t=10), "Validation accuracy: 40.5", line.format(s=10, t=3)])
    )
    curves = read_train_log(log)
    assert [r["seconds"] for r in curves["train"]] == [10.0, 13.0]
    assert curves["valid"] == [{"step": 5, "seconds": 10.0, "accuracy": 40.5}]
