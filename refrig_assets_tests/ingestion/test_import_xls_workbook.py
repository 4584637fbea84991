"""Public datasets are often Excel 97-2003 workbooks (.xls). Imported as a single file, one
was read as CSV: "columns ... are not in the file (it has 'column0')". It is named as a
workbook, as an .xlsx already was."""

import pytest

from refrig_assets.ingestion.mapping import MappingError, import_file, load_mapping
from refrig_assets_tests.support.import_mappings import TEMPERATURE_MAPPING


def test_an_xls_workbook_is_named(tmp_path):
    (tmp_path / "m.yaml").write_text(TEMPERATURE_MAPPING)
    book = tmp_path / "chiller.xls"
    book.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    with pytest.raises(MappingError, match=r"Excel 97-2003 workbook \(.xls\).*export the sheet"):
        import_file(book, load_mapping(tmp_path / "m.yaml"), tmp_path / "landing", tmp_path / "q")
