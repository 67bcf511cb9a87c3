"""Each licence a project can declare builds into its wheel's metadata (the matrix builds MIT)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.rendering import render, run, uv

pytestmark = pytest.mark.matrix


@pytest.mark.parametrize(
    ("licence", "expression"),
    [("Apache-2.0", "Apache-2.0"), ("Proprietary", "LicenseRef-Proprietary")],
)
def test_the_wheel_declares_the_licence_and_carries_its_text(
    tmp_path: Path, licence: str, expression: str
) -> None:
    project = render(tmp_path / "my-service", tasks=False, license=licence)

    run(uv(), "build", "--wheel", "--quiet", "--out-dir", str(tmp_path / "dist"), cwd=project)

    [wheel] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("my_service-0.1.0.dist-info/METADATA").decode()
        carried = archive.read("my_service-0.1.0.dist-info/licenses/LICENSE")
    assert f"\nLicense-Expression: {expression}\n" in metadata
    assert carried == (project / "LICENSE").read_bytes()
