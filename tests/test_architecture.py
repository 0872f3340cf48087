"""The neural codec contract from outside: the docs/ARCHITECTURE.md example codec is registered,
round-trips and is exact; the layering rules (no import cycle, no codec reaching the registry,
benchmarks and scripts on public names only) hold for the whole checkout."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import gencodec
from gencodec import registry
from gencodec.errors import GencodecError
from gencodec.models import zoo

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "order2_codec.py"
CANTERBURY = ROOT / "corpora" / "canterbury"


@pytest.fixture(scope="module")
def order2():
    """The example codec, registered as the doc says (one zoo line, one registry line)."""
    zoo.register("order2", "order2_codec:Order2Model")  # no weights: Order2Model() is the model
    registry.register("order2", "bytes", "order2_codec:Order2Codec", "order-2 adaptive context model")
    try:
        yield gencodec.get_codec("order2")
    finally:
        registry.unregister("order2")
        zoo.unregister("order2")


def test_the_architecture_doc_quotes_the_example_as_it_is():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    code = EXAMPLE.read_text()
    assert code in doc, "docs/ARCHITECTURE.md must quote tests/order2_codec.py verbatim"
    assert len(code.splitlines()) < 100
    for line in ('zoo.register("order2", "order2_codec:Order2Model")',
                 'registry.register("order2", "bytes", "order2_codec:Order2Codec"'):
        assert line in doc


@pytest.mark.parametrize("data", [b"", b"a", bytes(range(256)), bytes(range(256)) + b"\x00",
                                  b"abc" * 3000, np.random.default_rng(0).integers(0, 256, 9000, np.uint8).tobytes()],
                         ids=["empty", "1", "256", "257", "repetitive-3-segments", "random"])
def test_example_round_trips(order2, data):
    blob = gencodec.compress(data, codec="order2")
    assert gencodec.info(blob)["codec"] == "order2"
    assert gencodec.decompress(blob) == data


@pytest.mark.parametrize("name", ["grammar.lsp", "xargs.1", "fields.c"])
def test_example_compresses_real_text(order2, name):
    data = (CANTERBURY / name).read_bytes()
    rep = gencodec.compress_report(data, codec="order2")
    assert gencodec.decompress(rep.blob) == data
    assert rep.bits_per_byte < 5.0  # an order-2 model learns text
    assert 8 * len(rep.blob) < 1.01 * rep.stats["ideal_bits"] + 8 * 200  # the file is its ideal code length + header


def test_example_tables_never_depend_on_a_later_byte(order2):
    from gencodec.exact import driver

    data = np.frombuffer((CANTERBURY / "grammar.lsp").read_bytes()[:5000], np.uint8)
    model = order2.model
    base = driver.tables_in_order(model, data, "session")
    order = model.schedule(data.shape).order
    k = 3000
    changed = data.copy()
    changed[order[k]] ^= 0x55
    other = driver.tables_in_order(model, changed, "session")
    assert np.array_equal(base[: k + 1], other[: k + 1]) and not np.array_equal(base, other)
    model.schedule(data.shape).check()


def test_example_damaged_payload_is_refused(order2):
    from gencodec import container

    data = (CANTERBURY / "grammar.lsp").read_bytes()
    header, payload = container.unpack(gencodec.compress(data, codec="order2"))
    damaged = bytearray(payload)
    damaged[len(damaged) // 2] ^= 0xFF
    with pytest.raises(GencodecError):
        gencodec.decompress(container.pack(header, bytes(damaged)))


def test_example_is_listed_and_its_model_id_recorded(order2):
    assert "order2" in [c["name"] for c in gencodec.list_codecs()]
    blob = gencodec.compress(b"hello hello", codec="order2")
    assert bytes.fromhex(gencodec.info(blob)["model_id"]) == order2.model_id == zoo.default_model("order2").model_id


# ---------------------------------------------------------------------------------------------
# layering
# ---------------------------------------------------------------------------------------------
def _imports(path: Path, package: str) -> set[str]:
    """Modules of the gencodec package that a file imports (anywhere in it, lazily or not)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "gencodec" or m.startswith("gencodec.")}


def _graph() -> dict[str, set[str]]:
    files = {}
    for path in (ROOT / "gencodec").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        pkg = ".".join(parts if parts[-1] == "__init__" else parts[:-1]).replace(".__init__", "")
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = (path, pkg if parts[-1] != "__init__" else ".".join(parts[:-1]))
    graph = {}
    for name, (path, pkg) in files.items():
        graph[name] = {m for m in _imports(path, pkg) if m in files and m != name}
    return graph


def test_no_import_cycle_in_the_package():
    graph = _graph()
    # a package's __init__ re-exporting its modules is not a cycle of theirs
    edges = {a: {b for b in bs if not a.startswith(b + ".")} for a, bs in graph.items()}
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node, [node])


def test_no_codec_imports_the_registry():
    for path in (ROOT / "gencodec" / "codecs").glob("*.py"):
        text = path.read_text()
        assert "registry" not in _imports(path, "gencodec.codecs") and "gencodec.registry" not in _imports(path, "gencodec.codecs")
        assert "get_codec" not in text, path.name


def test_benchmarks_and_scripts_use_public_names_only():
    for path in [*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gencodec"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private and "._" not in (node.module or ""), f"{path.name} imports {node.module}: {private}"


def test_shipped_weights_stay_small_and_the_archive_compressed():
    """Each shipped model is at most 10 MB; each archive (the package's own, and gencodec-archive in
    archive/) holds only the compressed form, each model with its card; the package keeps at most
    one archived model an arch (the one its shipped model replaced); and each package's files stay
    well under PyPI's default 100 MB a file (its wheel)."""
    weights = [p for p in zoo.WEIGHTS.rglob("*") if p.is_file()]
    assert all(p.stat().st_size <= 10_000_000 for p in weights if p.suffix == ".safetensors")
    package = ROOT / "archive" / "gencodec_archive" / "weights"
    for folder in (zoo.ARCHIVE, package):
        archive = [p for p in folder.iterdir() if p.suffix != ".json"]
        assert archive and all(p.name.endswith(".safetensors.xz") for p in archive)
        assert all(p.with_name(p.name.removesuffix(".safetensors.xz") + ".json").is_file() for p in archive)
    archs = [p.name.rsplit("-", 1)[0] for p in zoo.ARCHIVE.glob("*.safetensors.xz")]
    assert len(archs) == len(set(archs))
    assert sum(p.stat().st_size for p in weights) < 40_000_000
    assert sum(p.stat().st_size for p in package.iterdir()) < 95_000_000


def test_the_archive_package_index_lists_exactly_what_gencodec_archive_keeps():
    """gencodec's index of gencodec-archive (how it tells an earlier shipped model from a foreign
    one where that package is not installed) names every model the package holds and no other, and
    no model is kept in both places."""
    package = ROOT / "archive" / "gencodec_archive" / "weights"
    held = {tuple(p.name.removesuffix(".safetensors.xz").rsplit("-", 1)) for p in package.glob("*.safetensors.xz")}
    indexed = {(arch, model_id.hex()) for arch in ("pixelcnn", "hyperprior", "sparse-transformer", "bytemodel")
               for model_id in zoo.archive_package_ids(arch)}
    assert held and held == indexed
    own = {tuple(p.name.removesuffix(".safetensors.xz").rsplit("-", 1)) for p in zoo.ARCHIVE.glob("*.safetensors.xz")}
    assert not own & held


def test_moving_models_to_the_archive_package_moves_its_version_on(tmp_path):
    """scripts/archive_model.py dates gencodec-archive's version when its files change (a serial
    after the date for a second change that day), so that an upgrade of the package installs them."""
    import datetime
    import importlib.util

    spec = importlib.util.spec_from_file_location("archive_model", ROOT / "scripts" / "archive_model.py")
    archive_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(archive_model)
    day = datetime.date(2026, 12, 7)
    assert archive_model.next_version("2026.12.6", day) == "2026.12.7"
    assert archive_model.next_version("2026.12.6.3", day) == "2026.12.7"
    assert archive_model.next_version("2026.12.7", day) == "2026.12.7.1"
    assert archive_model.next_version("2026.12.7.1", day) == "2026.12.7.2"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "gencodec-archive"\nversion = "2026.12.7"\nrequires-python = ">=3.11"\n')
    assert archive_model.bump_version(pyproject, day) == "2026.12.7.1"
    assert pyproject.read_text() == '[project]\nname = "gencodec-archive"\nversion = "2026.12.7.1"\nrequires-python = ">=3.11"\n'
    assert archive_model.PYPROJECT == ROOT / "archive" / "pyproject.toml" and archive_model.PYPROJECT.is_file()
