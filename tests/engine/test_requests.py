"""Reading request rows strictly and in batches: the CSV side of ``predict``, on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from promotion import InvalidInputError
from promotion.engine import RequestsCsv

FEATURES = ["f0", "f1"]


def written(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "rows.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_batches_follow_the_file_with_their_lines(tmp_path):
    path = written(tmp_path, "request_id,f0,f1,note\n"
                             "007,1,2,plain\n"
                             "\n"
                             'b,3,4,"a quoted, value\nover two lines"\n'
                             "c,5,6,x\r\n"
                             "d,7.5,8,y")
    requests = RequestsCsv.check(path, FEATURES)
    assert (requests.rows, requests.header) == (4, ["request_id", "f0", "f1", "note"])
    batches = list(requests.batches(batch_rows=3))
    assert [b.lines for b in batches] == [[2, 4, 6], [7]]
    assert [b.request_ids for b in batches] == [["007", "b", "c"], ["d"]]  # kept as written
    frame = pd.concat([b.features for b in batches])
    assert list(frame.columns) == FEATURES
    np.testing.assert_array_equal(frame.to_numpy(), [[1, 2], [3, 4], [5, 6], [7.5, 8]])


def test_a_byte_order_mark_and_extra_columns_are_fine(tmp_path):
    path = written(tmp_path, "f1,extra,f0\n2,x,1\n", encoding="utf-8-sig")
    [batch] = RequestsCsv.check(path, FEATURES).batches()
    assert batch.request_ids is None
    np.testing.assert_array_equal(batch.features.to_numpy(), [[1, 2]])


@pytest.mark.parametrize(("text", "message"), [
    ("", "is empty; its first line must name the columns"),
    ("f0,f1,f0\n1,2,3\n", "line 1: the header names column 'f0' twice"),
    ("f0,other\n1,2\n", "input is missing feature column 'f1'"),
    ("f0,f1\n1,2\n3,4,5\n", "line 3: 3 fields, the header has 2"),
    ("f0,f1\n\n1\n", "line 3: 1 fields, the header has 2"),
    ('f0,f1\n1,"2\n3,4\n', r"line 2: a quoted value cannot be read"),
    ("request_id,f0,f1\na,1,2\n,3,4\n", "line 3: the request id is empty"),
    ("request_id,f0,f1\na,1,2\nb,1,2\na,3,4\n",
     "line 4: request id 'a' repeats line 2 \\(column request_id\\)"),
])
def test_a_file_that_is_not_sound_is_refused_before_any_batch(tmp_path, text, message):
    path = written(tmp_path, text)
    with pytest.raises(InvalidInputError, match=f"{path.name}: {message}"):
        RequestsCsv.check(path, FEATURES)


def test_text_that_is_not_utf8_is_named(tmp_path):
    path = written(tmp_path, "f0,f1\n1,é\n", encoding="latin-1")
    with pytest.raises(InvalidInputError, match="rows.csv: is not UTF-8 text"):
        RequestsCsv.check(path, FEATURES)


def test_a_value_that_is_not_a_number_is_named_in_its_batch(tmp_path):
    path = written(tmp_path, "f0,f1\n1,2\n3,4\n5,six\n")
    batches = RequestsCsv.check(path, FEATURES).batches(batch_rows=2)
    next(batches)
    with pytest.raises(InvalidInputError, match="line 4: column 'f1' holds 'six', not a number"):
        next(batches)


def test_missing_values_stay_missing(tmp_path):
    path = written(tmp_path, "f0,f1\n1,\nNA,2\n")
    [batch] = RequestsCsv.check(path, FEATURES).batches()
    assert batch.features.isna().to_numpy().tolist() == [[False, True], [True, False]]
