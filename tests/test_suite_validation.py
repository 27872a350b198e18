"""Bad input is caught before any paid call, with the file, line and field and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.errors import ConfigError
from panopticon.evaluation.suite import load_suite
from tests.conftest import suite_yaml, write

URL = "http://127.0.0.1:9/v1"


def issues_of(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_suite(path, env or {})
    return str(info.value)


def test_a_valid_suite_loads_with_its_queries_metrics_and_prices(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(URL, queries=3))
    loaded = load_suite(path, {})
    assert [m.id for m in loaded.models] == ["good", "weak"]
    assert len(loaded.queries) == 3
    assert [m.name for m in loaded.metrics] == ["quality", "short"]
    assert loaded.prices["good"] is not None and loaded.prices["good"].input == 1.0


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", "models:\n  - id: a\n    provider: [openai\nqueries: []\n")
    text = issues_of(path)
    assert "malformed YAML" in text and f"{path}:4" in text


def test_an_unknown_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(URL) + "concurrencyy: 3\n")
    text = issues_of(path)
    assert "unknown key 'concurrencyy'" in text
    line = path.read_text().splitlines().index("concurrencyy: 3") + 1
    assert f"{path}:{line}" in text


def test_an_unknown_key_inside_a_model_names_the_model_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        f"""
        models:
          - id: a
            base_url: {URL}
            temprature: 0.2
        queries: [{{text: hi}}]
        """,
    )
    text = issues_of(path)
    assert "models[0].temprature" in text and "unknown key" in text and f"{path}:4" in text


def test_a_missing_query_file_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, base_url: '{URL}'}}]\nqueries: [{{file: nowhere.jsonl}}]\n",
    )
    text = issues_of(path)
    assert "nowhere.jsonl" in text and "not found" in text


def test_an_empty_query_file_is_named_even_beside_files_that_hold_queries(
    tmp_path: Path,
) -> None:
    """A suite naming the wrong (empty) file beside a good one ran the good one's queries
    and said nothing of the other."""
    write(tmp_path / "good.jsonl", '{"text": "one"}\n')
    write(tmp_path / "empty.csv", "text,theme\n")  # a header and no rows
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, base_url: '{URL}'}}]\n"
        "queries:\n  - {file: good.jsonl}\n  - {file: empty.csv}\n",
    )
    text = issues_of(path)
    assert f"{path}:4" in text and "queries[1].file" in text
    assert "empty.csv holds no queries" in text and "good.jsonl" not in text


def test_a_bad_jsonl_line_is_named_by_number(tmp_path: Path) -> None:
    write(tmp_path / "q.jsonl", '{"text": "one"}\n{"text": "two"}\n{"text": oops}\n')
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, base_url: '{URL}'}}]\nqueries: [{{file: q.jsonl}}]\n",
    )
    text = issues_of(path)
    assert f"{tmp_path / 'q.jsonl'}:3" in text and "not valid JSON" in text


def test_a_jsonl_row_without_text_is_named(tmp_path: Path) -> None:
    write(tmp_path / "q.jsonl", '{"text": "one"}\n\n{"theme": "x"}\n')
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, base_url: '{URL}'}}]\nqueries: [{{file: q.jsonl}}]\n",
    )
    text = issues_of(path)
    assert f"{tmp_path / 'q.jsonl'}:3" in text and "no query text" in text


def test_a_non_utf8_file_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, base_url: '{URL}'}}]\nqueries: [{{file: q.jsonl}}]\n",
    )
    text = issues_of(path)
    assert "not valid UTF-8" in text and f"{tmp_path / 'q.jsonl'}:2" in text
    assert "save the file as UTF-8" in text


def test_two_models_with_one_id_are_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        f"""
        models:
          - {{id: a, base_url: '{URL}'}}
          - {{id: a, base_url: '{URL}', model: other}}
        queries: [{{text: hi}}]
        """,
    )
    text = issues_of(path)
    assert "two models have the id 'a'" in text and f"{path}:3" in text


def test_a_missing_api_key_names_the_environment_variable(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        """
        models:
          - {id: gpt, provider: openai, model: gpt-4o-mini}
          - {id: claude, provider: anthropic, model: claude-3-5-haiku-latest,
             api_key_env: MY_CLAUDE_KEY}
        queries: [{text: hi}]
        """,
    )
    text = issues_of(path)
    assert "OPENAI_API_KEY is not set" in text
    assert "MY_CLAUDE_KEY is not set" in text
    loaded = load_suite(path, {"OPENAI_API_KEY": "k1", "MY_CLAUDE_KEY": "k2"})
    assert loaded.api_keys == {"gpt": "k1", "claude": "k2"}


def test_environment_substitution_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        """
        models:
          - id: a
            base_url: ${BASE:-http://localhost:1/v1}
            concurrency: ${CONC}
        queries: [{text: 'costs $$5'}]
        """,
    )
    loaded = load_suite(path, {"CONC": "7"})
    assert loaded.models[0].base_url == "http://localhost:1/v1"
    assert loaded.models[0].concurrency == 7
    assert loaded.queries[0].text == "costs $5"
    assert "environment variable CONC is not set" in issues_of(path, {})
    # an unset variable is the one problem said of its value: a base_url of ${URL} was also
    # "refused: the scheme must be http or https, not '(none)'"
    unset = write(
        tmp_path / "u.yaml",
        "models: [{id: a, base_url: '${URL}'}]\nqueries: [{text: hi}]\n",
    )
    text = issues_of(unset, {})
    assert "environment variable URL is not set" in text and "refused" not in text, text


def test_csv_datasets_keep_extra_columns_as_metadata(tmp_path: Path) -> None:
    write(
        tmp_path / "q.csv",
        'question,category,answer,source\n"Hi, there?",greet,Hello,web\nBye?,,,\n',
    )
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, base_url: '{URL}'}}]\nqueries: [{{file: q.csv, theme: misc}}]\n",
    )
    q = load_suite(path, {}).queries
    assert q[0].text == "Hi, there?" and q[0].theme == "greet" and q[0].expected == "Hello"
    assert q[0].metadata == {"source": "web"}
    assert q[1].theme == "misc" and q[1].source.endswith("q.csv:3")


def test_metric_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        f"""
        models: [{{id: a, base_url: '{URL}'}}]
        queries: [{{text: hi}}]
        metrics:
          - {{name: m1, type: rubrik, prompt: x}}
          - {{name: m2, type: rubric, prompt: x, scale: [1, 5], threshold: 9}}
          - {{name: m3, type: regex, pattern: '(['}}
          - {{name: m4, type: rubric, prompt: x}}
        """,
    )
    text = issues_of(path)
    assert "unknown metric type 'rubrik'" in text
    assert "threshold 9 is outside the scale 1 to 5" in text
    assert "invalid regular expression" in text
    assert "metric 'm4' needs a judge model" in text


def test_a_budget_needs_a_price_for_every_model(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        f"""
        models: [{{id: a, model: some-local-model, base_url: '{URL}'}}]
        queries: [{{text: hi}}]
        budget_usd: 1
        """,
    )
    assert "budget_usd is set but these models have no price: a" in issues_of(path)


def test_an_unknown_price_is_a_warning_not_a_zero(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, model: llama-local, base_url: '{URL}'}}]\nqueries: [{{text: hi}}]\n",
    )
    loaded = load_suite(path, {})
    assert loaded.prices["a"] is None
    assert any("no known price" in w for w in loaded.warnings)


def test_the_cli_prints_every_problem_and_exits_2_without_a_traceback(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = write(tmp_path / "s.yaml", "models: [{id: a}]\nqueries: [{text: hi}]\nfoo: 1\n")
    result = CliRunner().invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 2
    assert "unknown key 'foo'" in result.output
    assert "OPENAI_API_KEY is not set" in result.output
    assert "Traceback" not in result.output


def test_a_missing_suite_file_exits_2(tmp_path: Path, env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["run", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "suite file not found" in result.output
    # the suite file itself is not relative to a suite file: its hint names the folder
    assert "relative to the suite file" not in result.output
    assert "the current folder is" in result.output


def test_text_a_database_cannot_store_is_refused_with_its_line(tmp_path: Path) -> None:
    write(tmp_path / "q.jsonl", '{"text": "fine"}\n{"text": "bad\\u0000byte"}\n')
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, base_url: '{URL}'}}]\nqueries: [{{file: q.jsonl}}]\n",
    )
    text = issues_of(path)
    assert f"{tmp_path / 'q.jsonl'}:2" in text and "NUL character" in text


def test_an_unknown_key_that_looks_like_a_type_name_is_still_named(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(URL) + "strange: 1\nstr: 2\n")
    text = issues_of(path)
    assert "unknown key 'strange'" in text and "unknown key 'str'" in text


def test_a_csv_quote_that_is_never_closed_is_an_error_not_swallowed_rows(
    tmp_path: Path,
) -> None:
    write(tmp_path / "q.csv", 'text,theme\nfine,a\n"broken, a\nthird,b\nfourth,c\n')
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, base_url: '{URL}'}}]\nqueries: [{{file: q.csv}}]\n",
    )
    text = issues_of(path)
    assert f"{tmp_path / 'q.csv'}:3" in text and "never closed" in text


def test_a_multi_line_csv_cell_is_named_by_the_line_where_its_row_starts(
    tmp_path: Path,
) -> None:
    write(tmp_path / "q.csv", 'text,theme\n"two\nlines",a\n,b\n')
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: a, base_url: '{URL}'}}]\nqueries: [{{file: q.csv}}]\n",
    )
    text = issues_of(path)
    assert f"{tmp_path / 'q.csv'}:4" in text and "no query text" in text


def test_pairwise_models_must_be_models_of_the_suite(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        suite_yaml(URL, metrics="  - {name: pref, type: pairwise, models: [good, nope]}"),
    )
    text = issues_of(path)
    assert (
        "pairs the model 'nope', which is not in 'models'" in text
        and "good" not in text.split("pairs the model")[0]
    )


def test_faithfulness_without_context_is_refused_before_the_run(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.yaml",
        suite_yaml(URL, queries=7, metrics="  - {name: grounded, type: faithfulness}"),
    )
    text = issues_of(path)
    assert "metric 'grounded' (faithfulness) needs each query's 'context'" in text
    assert "7 of 7 queries have none" in text and "and 2 more" in text


def test_every_problem_is_reported_in_one_pass(tmp_path: Path) -> None:
    """A suite with a bad key, a bad dataset line, a bad metric and a missing variable
    says all four at once (it took three runs to find them one by one)."""
    write(tmp_path / "q.jsonl", '{"text": "one"}\n{"text": oops}\n{"text": "three"}\n{bad\n')
    path = write(
        tmp_path / "s.yaml",
        """
        models: [{id: a, base_url: '${MISSING_URL}'}]
        concurrencyy: 3
        queries: [{file: q.jsonl}]
        metrics:
          - {name: m1, type: rubrik}
        """,
    )
    text = issues_of(path)
    assert "MISSING_URL is not set" in text
    assert "unknown key 'concurrencyy'" in text
    assert f"{tmp_path / 'q.jsonl'}:2" in text and f"{tmp_path / 'q.jsonl'}:4" in text
    assert "unknown metric type 'rubrik'" in text
