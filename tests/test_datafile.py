"""Putting the ShareGPT input in place, and putting the study's back."""

import shutil

from prefix_sharing import datafile

BUNDLED_MD5 = "04a1ed97f37af0658351539e1cffa584"  # recorded in data.dvc


def test_a_users_file_is_kept_and_the_bundled_one_comes_back(tmp_path):
    dest, dvc_file = tmp_path / "sharegpt.json", tmp_path / "data.dvc"
    dvc_file.write_text(f"outs:\n- md5: {BUNDLED_MD5}\n  path: sharegpt.json\n")
    dest.write_text('[{"id": "mine", "conversations": []}]')
    mine = dest.read_bytes()

    assert not datafile.put_in_place(None, dest, dvc_file)
    assert dest.read_bytes() == mine

    assert datafile.put_in_place("bundled", dest, dvc_file)
    assert datafile.md5_of(dest) == BUNDLED_MD5


def test_a_named_file_is_copied_into_place(tmp_path):
    dest, dvc_file = tmp_path / "sharegpt.json", tmp_path / "data.dvc"
    dvc_file.write_text(f"outs:\n- md5: {BUNDLED_MD5}\n")
    source = tmp_path / "copy.json"
    shutil.copy(datafile.bundled_path(), source)
    assert datafile.put_in_place(str(source), dest, dvc_file)
    assert dest.stat().st_size == 125509632
