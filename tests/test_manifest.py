"""Manifests: CSV and JSONL in the documented format, paths relative to the manifest, and a clear error per bad row."""

import json

import pytest

from quadrant.errors import ManifestError
from quadrant.manifest import read_manifest


def test_csv_and_jsonl_read_the_same(tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "m.csv").write_text(
        'image,question,label,paraphrases,study_id,finding\n'
        'a.png,Is there a nodule?,1,"[""Any nodule?"", {""text"": ""Can a nodule be ruled out?"", ""inverted"": true}]",s1,nodule\n'
        '/abs/b.png,Is there a pneumothorax?,,,,\n'
    )
    rows = read_manifest(tmp_path / "csv" / "m.csv")
    assert rows[0].image == tmp_path / "csv" / "a.png" and rows[0].label == "yes" and rows[0].study_id == "s1"
    assert [p.inverted for p in rows[0].paraphrases] == [False, True]
    assert rows[0].extra == {"finding": "nodule"}
    assert str(rows[1].image) == "/abs/b.png" and rows[1].label is None and rows[1].paraphrases is None
    assert rows[1].study_id == "row-3"  # stable across runs: the line number
    lines = [{"image": "a.png", "question": "Is there a nodule?", "label": "no",
              "paraphrases": ["Any nodule?"], "study_id": "j1"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (row,) = read_manifest(tmp_path / "m.jsonl")
    assert row.label == "no" and row.paraphrases[0].text == "Any nodule?" and row.image == tmp_path / "a.png"


@pytest.mark.parametrize(
    "content, message",
    [
        ("image,label\na.png,yes\n", "lacks the column(s) question"),
        ("image,question\n,Is there a nodule?\n", "row 2: empty image"),
        ("image,question,label\na.png,Is there a nodule?,maybe\n", "label must be yes or no"),
        ("image,question,paraphrases\na.png,Is there a nodule?,not json\n", "JSON list"),
        ("image,question,paraphrases\na.png,Is there a nodule?,[3]\n", "item 1"),
        ("image,question,study_id\na.png,Is there a nodule?,x\nb.png,Any mass?,x\n", "more than once"),
        ("image,question\n", "no rows"),
    ],
)
def test_bad_manifests_name_the_row_and_problem(tmp_path, content, message):
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(path)


def test_missing_manifest_and_bad_jsonl(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "none.csv")
    path = tmp_path / "m.jsonl"
    path.write_text('{"image": "a.png", "question": "Is there a nodule?"}\n[1]\n')
    with pytest.raises(ManifestError, match="line 2: expected a JSON object"):
        read_manifest(path)


@pytest.mark.parametrize(
    "name, content",
    [
        ("m.csv", "image;question;label\r\na.png;Is there a nodule?;yes\r\n"),  # Excel where "," is the decimal mark
        ("m.tsv", "image\tquestion\tlabel\na.png\tIs there a nodule?\tyes\n"),
        ("m.csv", "\ufeffImage , Question,LABEL\r\na.png,Is there a nodule?,yes\r\n"),  # Excel's UTF-8 CSV
        ("m.csv", "image,question,label,,\na.png,Is there a nodule?,yes,,\n,,,,\n\n"),  # trailing empty cells
    ],
)
def test_a_spreadsheets_csv_reads_as_written(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    (row,) = read_manifest(path)
    assert (row.image, row.question, row.label, row.extra) == (tmp_path / "a.png", "Is there a nodule?", "yes", {})


def test_the_finding_column_is_found_in_any_case_and_other_extras_keep_their_names(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("Image,Question,Finding,Site\na.png,Is there a nodule?,nodule,B\n")
    assert read_manifest(path)[0].extra == {"finding": "nodule", "Site": "B"}


def test_an_unquoted_delimiter_in_a_cell_is_refused_not_cut(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("image,question\na.png,Is there an effusion?\nb.png,Is there an effusion, on the left?\n")
    with pytest.raises(ManifestError, match=r"row 3 has 3 cells where the header names 2 columns: .*comma in double"):
        read_manifest(path)


def test_a_quoted_line_break_stays_in_the_question(tmp_path):
    """Kept, so that the question rule names it; the words on either side were once glued into one."""
    path = tmp_path / "m.csv"
    path.write_text('image,question\n"a.png","Is there a pleural\neffusion?"\nb.png,Any nodule?\n')
    first, second = read_manifest(path)
    assert first.question == "Is there a pleural\neffusion?" and "pleuraleffusion" not in first.question
    assert (second.question, second.study_id) == ("Any nodule?", "row-3")  # a spreadsheet's row, not a line


def test_a_column_named_twice_is_refused(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("image,question,Image\na.png,Any nodule?,b.png\n")
    with pytest.raises(ManifestError, match="column.s. image appear more than once"):
        read_manifest(path)


def test_a_manifest_without_a_header_is_refused_without_echoing_its_first_row(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("MRN12345_DOE.png,Is there a nodule?\n")
    with pytest.raises(ManifestError, match="lacks the column.s. image, question: its first line must name") as caught:
        read_manifest(path)
    assert "MRN12345" not in str(caught.value)


@pytest.mark.parametrize("cell, frame", [("2", 2), ("2.0", 2), ("", None)])  # pandas writes 2.0 beside gaps
def test_a_frame_cell_is_a_whole_number_as_spreadsheets_and_pandas_write_it(tmp_path, cell, frame):
    path = tmp_path / "m.csv"
    path.write_text(f"image,question,frame\na.png,Is there a nodule?,{cell}\n")
    assert read_manifest(path)[0].frame == frame


@pytest.mark.parametrize("cell", ["0", "1.5", "-1", "two", "\u00b2"])
def test_a_frame_cell_that_is_no_frame_number_is_refused(tmp_path, cell):
    path = tmp_path / "m.csv"
    path.write_text(f"image,question,frame\na.png,Is there a nodule?,{cell}\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="row 2: frame must be a whole number from 1"):
        read_manifest(path)


def test_a_path_written_on_windows_names_the_same_file(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("image,question,mask\r\nimages\\a.png,Is there a nodule?,masks\\a.png\r\n")
    (row,) = read_manifest(path)
    assert (row.image, row.mask) == (tmp_path / "images" / "a.png", tmp_path / "masks" / "a.png")


@pytest.mark.parametrize("cell, label", [("Y", "yes"), ("n", "no"), ("TRUE", "yes"), ("0.0", "no")])
def test_a_label_as_spreadsheets_write_it(tmp_path, cell, label):
    path = tmp_path / "m.csv"
    path.write_text(f"image,question,label\na.png,Is there a nodule?,{cell}\n")
    assert read_manifest(path)[0].label == label


def test_a_label_naming_the_findings_state_is_refused(tmp_path):
    """'present' would read backwards for a question about absence ("Can a nodule be ruled out?")."""
    path = tmp_path / "m.csv"
    path.write_text("image,question,label\na.png,Can a nodule be ruled out?,present\n")
    with pytest.raises(ManifestError, match="row 2: label must be yes or no, got 'present'"):
        read_manifest(path)
