"""File loaders: MovieLens (u.data, ratings.dat, ratings.csv), RecBole .inter, CSV/Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossent.errors import CrossentError, DataFileError
from crossent.recsys.data.interactions import Interactions
from crossent.recsys.data.loaders import load_interactions, load_movielens, load_recbole, load_table

# the same four ratings in every format: (user, item, rating, timestamp)
ROWS = [(196, 242, 3.0, 881250949), (186, 302, 3.5, 891717742), (196, 377, 1.0, 878887116),
        (22, 377, 5.0, 878887116)]  # fmt: skip


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _original_rows(inter: Interactions) -> list[tuple]:
    assert inter.rating is not None
    return [
        (inter.user_ids[u], inter.item_ids[i], r, t)
        for u, i, r, t in zip(inter.user, inter.item, inter.rating, inter.timestamp, strict=True)
    ]


def test_u_data_tab_separated_without_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in ROWS))
    inter = load_movielens(path)
    expected = [(u, i, float(int(r)), t) for u, i, r, t in ROWS]
    assert _original_rows(inter) == expected
    assert inter.user_ids.tolist() == [22, 186, 196]
    assert inter.timestamp.dtype == np.int64


def test_ratings_dat_double_colon_separated(tmp_path: Path) -> None:
    path = _write(tmp_path / "ratings.dat", "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ROWS))
    assert _original_rows(load_movielens(path)) == ROWS


def test_ratings_csv_with_header_and_folder_lookup(tmp_path: Path) -> None:
    body = "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in ROWS)
    _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n" + body)
    assert _original_rows(load_movielens(tmp_path / "ratings.csv")) == ROWS
    assert _original_rows(load_movielens(tmp_path)) == ROWS
    assert _original_rows(load_interactions(tmp_path)) == ROWS
    assert _original_rows(load_interactions(tmp_path / "ratings.csv")) == ROWS


def test_movielens_bad_rating_names_file_line_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,2,4.0,10\n1,3,4.5,11\n1,4,abc,12\n",
    )
    with pytest.raises(
        DataFileError, match=r"ratings.csv line 4, column 'rating': value 'abc' is not a number"
    ):
        load_movielens(path)


def test_movielens_short_line_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.data", "1\t2\t4\t10\n1\t3\t4\n")
    with pytest.raises(DataFileError, match=r"u.data line 2: the line has 3 fields, expected 4"):
        load_movielens(path)


def test_ratings_dat_bad_user_and_missing_value(tmp_path: Path) -> None:
    path = _write(tmp_path / "ratings.dat", "1::2::4::10\nx1::3::4::11\n")
    with pytest.raises(
        DataFileError, match=r"ratings.dat line 2, column 'user': value 'x1' is not an integer"
    ):
        load_movielens(path)
    path = _write(tmp_path / "ratings.dat", "1::2::4::10\n1::3::4::11\n2::3::::12\n")
    with pytest.raises(DataFileError, match=r"line 3, column 'rating': missing value"):
        load_movielens(path)


def test_movielens_non_finite_rating_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "ratings.dat", "1::2::4::10\n1::3::inf::11\n")
    with pytest.raises(DataFileError, match=r"line 2, column 'rating': value 'inf' is not finite"):
        load_movielens(path)


def test_movielens_csv_with_other_header_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "ratings.csv", "user,item,rating,time\n1,2,3,4\n")
    with pytest.raises(DataFileError, match="expected the MovieLens header"):
        load_movielens(path)


def test_movielens_folder_without_ratings_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CrossentError, match="no MovieLens ratings file"):
        load_movielens(tmp_path)
    with pytest.raises(CrossentError, match="nope: no such file"):
        load_movielens(tmp_path / "nope")


def test_recbole_inter_with_typed_header(tmp_path: Path) -> None:
    text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS
    )
    inter = load_recbole(_write(tmp_path / "ml.inter", text))
    # token ids are strings, ordered as strings
    assert inter.user_ids.tolist() == ["186", "196", "22"]
    assert _original_rows(inter) == [(str(u), str(i), r, float(t)) for u, i, r, t in ROWS]
    assert _original_rows(load_interactions(tmp_path / "ml.inter")) == _original_rows(inter)


def test_recbole_without_timestamp_uses_row_order(tmp_path: Path) -> None:
    text = "user_id:token\titem_id:token\ttags:token_seq\nu\tb\tx y\nu\ta\tz\n"
    inter = load_recbole(_write(tmp_path / "t.inter", text))
    assert inter.rating is None
    _, items = inter.sequences()
    assert inter.item_ids[items].tolist() == ["b", "a"]


def test_recbole_header_and_line_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.inter", "user_id\titem_id:token\n1\t2\n")
    with pytest.raises(DataFileError, match=r"a.inter line 1: header field 1 'user_id'"):
        load_recbole(path)
    path = _write(tmp_path / "b.inter", "uid:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataFileError, match=r"no user column 'user_id'"):
        load_recbole(path)
    header = "user_id:token\titem_id:token\trating:float\n"
    path = _write(tmp_path / "c.inter", header + "1\t2\t3\n1\t2\tx\n")
    with pytest.raises(
        DataFileError, match=r"c.inter line 3, column 'rating': value 'x' is not a number"
    ):
        load_recbole(path)


def test_table_csv_guesses_columns_and_accepts_string_ids(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "log.csv",
        "user_id,video_id,ts,watch_time\nann,v9,3,12.5\nbob,v1,1,3.0\nann,v1,2,7.25\n",
    )
    inter = load_table(path)
    assert inter.user_ids.tolist() == ["ann", "bob"]
    assert inter.item_ids.tolist() == ["v1", "v9"]
    assert inter.timestamp.tolist() == [3, 1, 2]
    assert inter.watch_time is not None and inter.watch_time.tolist() == [12.5, 3.0, 7.25]
    assert inter.rating is None
    same = load_interactions(path, user="user_id", item="video_id", timestamp="ts")
    assert same.user.tolist() == inter.user.tolist()


def test_table_tsv_with_explicit_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.tsv", "who\twhat\twhen\tstars\n5\t6\t1\t4.5\n")
    inter = load_table(path, user="who", item="what", timestamp="when", rating="stars")
    assert _original_rows(inter) == [(5, 6, 4.5, 1)]


def test_table_missing_column_lists_the_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "a,b\n1,2\n")
    with pytest.raises(CrossentError, match=r"no user column given.*columns are \['a', 'b'\]"):
        load_table(path)
    with pytest.raises(CrossentError, match=r"item column 'c' is not in"):
        load_table(path, user="a", item="c")


def test_table_non_numeric_timestamp_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user,item,timestamp\n1,2,10\n1,3,soon\n")
    with pytest.raises(
        DataFileError, match=r"log.csv line 3, column 'timestamp': value 'soon' is not a number"
    ):
        load_table(path)


def test_table_bad_watch_time_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "user,item,watch_time\n1,2,10\n1,3,\n")
    with pytest.raises(DataFileError, match=r"line 3, column 'watch_time': missing value"):
        load_table(path)


def test_parquet_table_with_datetime_timestamps(tmp_path: Path) -> None:
    table = pa.table(
        {
            "user": ["a", "b", "a"],
            "item": [3, 1, 2],
            "timestamp": pa.array(
                np.array(["2024-01-02", "2024-01-01", "2024-01-03"], dtype="datetime64[s]")
            ),
            "rating": [1.0, 2.0, 3.0],
        }
    )
    pq.write_table(table, tmp_path / "log.parquet")
    inter = load_interactions(tmp_path / "log.parquet")
    day = 86400  # 2024-01-01 is day 19723 after 1970-01-01: 54 years, 13 of them leap years
    assert inter.timestamp.tolist() == [19724 * day, 19723 * day, 19725 * day]
    assert _original_rows(inter)[0] == ("a", 3, 1.0, 19724 * day)


def test_parquet_date_column_becomes_seconds(tmp_path: Path) -> None:
    dates = pa.array(np.array(["1970-01-02", "1970-01-11"], dtype="datetime64[D]"))
    pq.write_table(pa.table({"user": [1, 1], "item": [1, 2], "time": dates}), tmp_path / "d.pq")
    assert load_table(tmp_path / "d.pq").timestamp.tolist() == [86400, 10 * 86400]


def test_parquet_missing_value_names_row_and_column(tmp_path: Path) -> None:
    table = pa.table({"user": [1, 2, 3], "item": [1, 2, 3], "rating": [1.0, None, 2.0]})
    pq.write_table(table, tmp_path / "log.parquet")
    with pytest.raises(DataFileError, match=r"log.parquet, column 'rating': row 1 has no value"):
        load_table(tmp_path / "log.parquet")


def test_load_interactions_rejects_unknown_format(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "user,item\n1,2\n")
    with pytest.raises(CrossentError, match="format = 'xml' is not one of"):
        load_interactions(path, format="xml")  # type: ignore[arg-type]


def test_ratings_csv_with_quoted_header(tmp_path: Path) -> None:
    body = "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in ROWS)
    header = '"userId","movieId","rating","timestamp"\n'
    assert _original_rows(load_movielens(_write(tmp_path / "ratings.csv", header + body))) == ROWS


def test_explicit_parquet_format_overrides_the_file_name(tmp_path: Path) -> None:
    pq.write_table(pa.table({"user": [1, 2], "item": [3, 4]}), tmp_path / "log.bin")
    inter = load_interactions(tmp_path / "log.bin", format="parquet")
    assert inter.item_ids.tolist() == [3, 4]


def test_headerless_movielens_file_with_another_name_points_at_the_format_option(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "u_train.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    with pytest.raises(CrossentError, match="looks like data, not column names") as caught:
        load_interactions(path)
    assert "pass --format movielens" in str(caught.value)
    assert "user=" not in str(caught.value)
    inter = load_interactions(path, "movielens")
    assert inter.user_ids.tolist() == [186, 196]


def test_compressed_table_and_column_names_in_any_case(tmp_path: Path) -> None:
    path = tmp_path / "log.csv.gz"
    with pa.CompressedOutputStream(str(path), "gzip") as out:
        out.write(b"USER_ID,Item_Id,Timestamp\nu1,a,3\nu2,b,1\nu1,b,2\n")
    inter = load_table(path)
    assert inter.user_ids.tolist() == ["u1", "u2"]
    assert inter.timestamp.tolist() == [3, 1, 2]
