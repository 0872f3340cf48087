"""gencodec.bench and `gencodec bench`: metrics, BD-rate worked examples, totals against the
files `gencodec compress` writes, workers, plots and reports."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gencodec.bench import metrics, plot, report, runner

CORPORA = Path(__file__).resolve().parent.parent / "corpora"
SMALL_TEXTS = ("grammar.lsp", "xargs.1", "fields.c")


def _codec_ready(name: str) -> bool:
    try:
        return runner._codec_available(name) is None
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture()
def small_files(tmp_path: Path) -> list[Path]:
    """Three small Canterbury files and two Kodak crops (PNG), copied into one folder."""
    d = tmp_path / "corpus"
    d.mkdir()
    out = []
    for name in SMALL_TEXTS:
        p = d / name
        p.write_bytes((CORPORA / "canterbury" / name).read_bytes())
        out.append(p)
    for i, (name, box) in enumerate((("kodim23.png", (300, 100, 364, 148)), ("kodim03.png", (0, 0, 40, 56)))):
        p = d / f"crop{i}.png"
        Image.open(CORPORA / "kodak" / name).crop(box).save(p)
        out.append(p)
    (d / "manifest.json").write_text("{}")  # folders never expand to their manifest
    return out


def _strip_costs(doc: dict) -> dict:
    """The document without the numbers that may differ between runs (timings, memory, env)."""
    d = json.loads(report.to_json(doc))
    d.pop("environment")
    d["settings"].pop("workers")
    d["settings"].pop("threads_per_worker")
    for r in d["rows"] + d["totals"]:
        r.pop("cost", None)
    return d


# ---------------------------------------------------------------------------------------------
# metrics


def test_rates_definitions():
    assert metrics.bits_per_byte(100, 800) == 1.0
    assert metrics.bits_per_subpixel(300, 10, 10, 3) == 8.0
    assert metrics.bits_per_pixel(300, 10, 10) == 24.0
    assert metrics.overhead_pct(1010, 1000) == pytest.approx(1.0)
    assert metrics.overhead_pct(5, 0) is None


def test_psnr_known_values():
    a = np.full((4, 4, 3), 100, np.uint8)
    assert metrics.psnr(a, a) == math.inf
    b = a + 1  # MSE exactly 1
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2))
    c = a.copy()
    c[0, 0, 0] = 110  # one sample off by 10: MSE = 100 / 48
    assert metrics.psnr(a, c) == pytest.approx(10 * math.log10(255**2 * 48 / 100))


def test_ms_ssim_identical_and_degraded():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (176, 176, 3), dtype=np.uint8)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert 0 < metrics.ms_ssim(a, b) < 0.99
    assert metrics.ms_ssim(a[:100], b[:100]) is None  # too small for 5 scales


# ---------------------------------------------------------------------------------------------
# BD-rate worked examples


CURVE_PSNR = [28.0, 31.0, 33.5, 36.0, 39.0]
CURVE_RATE = [0.15, 0.32, 0.55, 0.95, 1.8]


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bd_rate_every_rate_times_0_8_is_minus_20_percent(method):
    test_rates = [r * 0.8 for r in CURVE_RATE]
    assert metrics.bd_rate(CURVE_RATE, CURVE_PSNR, test_rates, CURVE_PSNR, method) == pytest.approx(-20.0, abs=1e-9)
    # and the other way round: 1 / 0.8 = +25 %
    assert metrics.bd_rate(test_rates, CURVE_PSNR, CURVE_RATE, CURVE_PSNR, method) == pytest.approx(25.0, abs=1e-9)
    assert metrics.bd_rate(CURVE_RATE, CURVE_PSNR, CURVE_RATE, CURVE_PSNR, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bd_rate_partial_overlap_known_answer(method):
    # anchor: ln R = (P - 30) / 5 on [30, 36]; test: ln R = (P - 30) / 5 - 0.05 (P - 30) on [32, 40].
    # Overlap [32, 36]; mean of -0.05 (P - 30) there is -0.2, so BD-rate = e^-0.2 - 1 = -18.127 %.
    pa = np.linspace(30, 36, 5)
    pt = np.linspace(32, 40, 6)
    ra = np.exp((pa - 30) / 5)
    rt = np.exp((pt - 30) / 5 - 0.05 * (pt - 30))
    got = metrics.bd_rate(ra, pa, rt, pt, method)
    assert got == pytest.approx((math.exp(-0.2) - 1) * 100, abs=1e-6)


def test_bd_rate_no_overlap_and_bad_method():
    assert metrics.bd_rate([1, 2], [30, 32], [1, 2], [33, 35]) is None
    with pytest.raises(ValueError):
        metrics.bd_rate(CURVE_RATE, CURVE_PSNR, CURVE_RATE, CURVE_PSNR, "linear")


def test_rate_at_psnr_interpolates_log_rate():
    rates, psnrs = [0.25, 1.0], [30.0, 34.0]
    assert metrics.rate_at_psnr(rates, psnrs, 32.0) == pytest.approx(0.5)  # geometric midpoint
    assert metrics.rate_at_psnr(rates, psnrs, 30.0) == pytest.approx(0.25)
    assert metrics.rate_at_psnr(rates, psnrs, 29.9) is None
    assert metrics.rate_at_psnr(rates, psnrs, 34.1) is None


# ---------------------------------------------------------------------------------------------
# the runner


def test_folder_expansion_skips_manifest(small_files):
    files = runner.expand_paths([small_files[0].parent])
    assert [f.name for f in files] == sorted(p.name for p in small_files)


def test_totals_equal_files_written_by_gencodec_compress(small_files, tmp_path):
    """Independent check: run `gencodec compress` (CLI) per file and sum the sizes it wrote."""
    from gencodec_cli.main import cli

    codecs = ["gzip", "xz", "png"]
    doc = runner.run_bench([small_files[0].parent], codecs, progress=False)
    out_dir = tmp_path / "written"
    out_dir.mkdir()
    cli_runner = CliRunner()
    for codec in codecs:
        written = {}
        for f in small_files:
            if codec == "png" and f.suffix != ".png":
                continue
            target = out_dir / f"{f.name}.{codec}.gcx"
            res = cli_runner.invoke(cli, ["compress", "--codec", codec, "-q", "-o", str(target), str(f)])
            assert res.exit_code == 0, res.output
            written[f.as_posix()] = target.stat().st_size
        rows = {r["file"]: r for r in doc["rows"] if r["codec"] == codec and r["status"] == "ok"}
        assert {k: r["n_bytes_out"] for k, r in rows.items()} == written
        total = next(t for t in doc["totals"] if t["codec"] == codec)
        assert total["n_bytes_out"] == sum(written.values())
        assert total["n_files"] == len(written)
        assert total["n_bytes_in"] == sum(Path(k).stat().st_size for k in written)
    # png on the text files is skipped with a reason, not counted
    skipped = [r for r in doc["rows"] if r["codec"] == "png" and r["status"] == "skipped"]
    assert len(skipped) == 3 and all("image" in r["reason"] for r in skipped)
    png_total = next(t for t in doc["totals"] if t["codec"] == "png")
    assert png_total["bits_per_subpixel"] == pytest.approx(8 * png_total["n_bytes_out"] / png_total["n_subpixels"])
    assert png_total["n_subpixels"] == (64 * 48 + 40 * 56) * 3
    assert all(r["verified"] in ("identical bytes", "identical pixels") for r in doc["rows"] if r["status"] == "ok")


def test_round_trip_mismatch_is_reported(small_files, monkeypatch):
    import gencodec.api

    real = gencodec.api.decompress
    monkeypatch.setattr(gencodec.api, "decompress", lambda blob, **kw: real(blob, **kw) + b"!")
    doc = runner.run_bench([small_files[0]], ["gzip"], workers=0, progress=False)  # in-process: sees the patch
    (row,) = doc["rows"]
    assert row["status"] == "failed" and row["verified"] == "MISMATCH"
    assert doc["totals"][0]["n_failed"] == 1 and doc["totals"][0]["n_files"] == 0


def test_workers_2_gives_the_same_numbers_as_workers_1(small_files):
    paths = [str(p) for p in small_files]
    one = runner.run_bench(paths, ["gzip", "bz2", "png"], workers=1, progress=False)
    two = runner.run_bench(paths, ["gzip", "bz2", "png"], workers=2, progress=False)
    here = runner.run_bench(paths, ["gzip", "bz2", "png"], workers=0, progress=False)
    assert two["settings"]["workers"] == 2
    assert _strip_costs(one) == _strip_costs(two) == _strip_costs(here)
    assert [(r["file"], r["codec"]) for r in one["rows"]] == [(str(p), c) for p in small_files for c in ("gzip", "bz2", "png")]
    assert all("encode_wall_s" in r["cost"] for r in two["rows"] if r["status"] == "ok")


def test_environment_record():
    env = report.environment(["gzip"], memory_method="x")
    assert env["machine"]["cores"] >= 1 and env["machine"]["cpu"]
    assert env["versions"]["numpy"] == np.__version__
    assert env["versions"]["python"].count(".") == 2
    assert "OMP_NUM_THREADS" in env["threads"]
    assert env["date"].endswith("Z")


# ---------------------------------------------------------------------------------------------
# lossy: RD sweep, references, plot


@pytest.fixture()
def lossy_image(tmp_path: Path) -> Path:
    p = tmp_path / "crop.png"
    Image.open(CORPORA / "kodak" / "kodim23.png").crop((200, 80, 392, 256)).save(p)  # 192 x 176
    return p


@pytest.mark.skipif(not (_codec_ready("jpeg") and _codec_ready("webp")), reason="jpeg/webp codecs not available")
def test_lossy_sweep_plot_and_reference(lossy_image, tmp_path):
    ref_path = tmp_path / "ref.json"
    ref_path.write_text(json.dumps({"name": "published", "points": [
        {"bpp": 0.5, "psnr": 30.0}, {"bpp": 1.0, "psnr": 34.0}, {"bpp": 2.0, "psnr": 38.0}, {"bpp": 4.0, "psnr": 42.0}]}))
    refs = report.load_reference(ref_path)
    qualities = {"*": [20, 50, 80, 95]}
    doc = runner.run_bench([lossy_image], ["jpeg", "webp"], lossy=True, qualities=qualities, references=refs, progress=False)
    rows = [r for r in doc["rows"] if r["status"] == "ok"]
    assert len(rows) == 8
    from gencodec import compress, decompress

    for r in rows:  # PSNR recomputed from an independently coded file
        img = Image.open(lossy_image)
        dec = decompress(compress(str(lossy_image), r["codec"], quality=r["quality"]))
        a, b = np.asarray(img, dtype=np.int64), np.asarray(dec, dtype=np.int64)
        assert r["psnr"] == pytest.approx(10 * math.log10(255**2 / np.mean((a - b) ** 2)))
        assert 0 < r["ms_ssim"] < 1
        assert r["bits_per_pixel"] == pytest.approx(8 * r["n_bytes_out"] / (192 * 176))
    jpeg = [p for p in doc["rd"]["jpeg"]]
    assert [p["quality"] for p in jpeg] == [20, 50, 80, 95]
    assert all(a["bpp"] < b["bpp"] and a["psnr"] < b["psnr"] for a, b in zip(jpeg, jpeg[1:]))
    s = doc["rd_summary"]
    assert set(s["bd_rate_pct"]) == {"jpeg", "published"}
    assert set(s["bd_rate_pct"]["jpeg"]) == {"webp", "published"}
    assert isinstance(s["bd_rate_pct"]["jpeg"]["webp"], float)
    assert s["bd_rate_pct"]["published"]["jpeg"] == pytest.approx(
        metrics.bd_rate(refs[0]["bpp"], refs[0]["psnr"], [p["bpp"] for p in jpeg], [p["psnr"] for p in jpeg]))
    assert s["bpp_at_psnr"]["published"]["32"] == pytest.approx(math.sqrt(0.5))

    png = tmp_path / "rd.png"
    fig = plot.save(doc, png)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("bits per pixel") and ax.get_ylabel().startswith("PSNR")
    assert [line.get_label() for line in ax.get_lines()] == ["jpeg", "webp", "published (reference)"]
    assert len(ax.get_lines()[0].get_xdata()) == 4
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 100 and im.height > 100
    md = report.to_markdown(doc, "RD")
    assert "BD-rate against `jpeg`" in md and "| `webp` |" in md


def test_lossless_plot_is_a_labelled_bar_chart(small_files, tmp_path):
    doc = runner.run_bench([str(p) for p in small_files[:3]], ["gzip", "xz", "stored"], progress=False)
    png = tmp_path / "bars.png"
    fig = plot.save(doc, png)
    ax = fig.axes[0]
    assert ax.get_ylabel().startswith("bits per byte")
    by_rate = sorted(doc["totals"], key=lambda t: t["bits_per_byte"])
    assert [t.get_text() for t in ax.get_xticklabels()] == [t["codec"] for t in by_rate]
    assert [p.get_height() for p in ax.patches] == [t["bits_per_byte"] for t in by_rate]
    assert by_rate[-1]["codec"] == "stored" and by_rate[-1]["bits_per_byte"] > 8
    assert fig.axes[1].get_ylabel().startswith("MB/s")
    with Image.open(png) as im:
        assert im.format == "PNG"


# ---------------------------------------------------------------------------------------------
# the command


def test_bench_command_writes_json_csv_markdown(small_files, tmp_path):
    from gencodec_cli.bench import bench, parse_qualities

    assert parse_qualities(("10,50", "jpeg=20,40.5")) == {"*": [10, 50], "jpeg": [20, 40.5]}
    out = {k: tmp_path / f"r.{k}" for k in ("json", "csv", "md", "png")}
    res = CliRunner().invoke(bench, [str(small_files[0]), str(small_files[1]), "--codec", "gzip,bz2", "-q",
                                     "--json", str(out["json"]), "--csv", str(out["csv"]), "--markdown", str(out["md"]),
                                     "--plot", str(out["png"])])
    assert res.exit_code == 0, res.output
    with Image.open(out["png"]) as im:
        assert im.format == "PNG"
    doc = json.loads(out["json"].read_text())
    assert doc["settings"]["codecs"] == ["gzip", "bz2"] and len(doc["rows"]) == 4
    lines = list(csv.DictReader(io.StringIO(out["csv"].read_text())))
    assert len(lines) == 4 + 2 and lines[-1]["file"] == "TOTAL"
    assert int(lines[0]["n_bytes_out"]) == doc["rows"][0]["n_bytes_out"]
    md = out["md"].read_text()
    assert "`gzip`" in md and "bits/byte" in md

    res = CliRunner().invoke(bench, [str(small_files[0]), "--codec", "no-such-codec"])
    assert res.exit_code == 1 and "unknown codec" in res.output
    res = CliRunner().invoke(bench, [str(small_files[0]), "--quality", "50"])
    assert res.exit_code == 2 and "--lossy" in res.output
    res = CliRunner().invoke(bench, ["--help"])
    assert res.exit_code == 0 and "--workers" in res.output


def test_bench_param_adds_a_job_per_parameter_set(small_files, tmp_path):
    from gencodec_cli.bench import bench, parse_params

    assert parse_params(("jpeg-xl-lossless:effort=9", "jpeg-xl-lossless:effort=1")) == {
        "jpeg-xl-lossless": [{"effort": 9}, {"effort": 1}]}
    out = {k: tmp_path / f"r.{k}" for k in ("json", "csv", "md")}
    crops = [str(f) for f in small_files if f.suffix == ".png"]
    res = CliRunner().invoke(bench, [*crops, "--codec", "jpeg-xl-lossless", "--param", "jpeg-xl-lossless:effort=1",
                                     "-q", "--json", str(out["json"]), "--csv", str(out["csv"]), "--markdown", str(out["md"])])
    assert res.exit_code == 0, res.output
    doc = json.loads(out["json"].read_text())
    assert [j["params"] for j in doc["settings"]["jobs"]] == [{}, {"effort": 1}]
    default, fast = doc["totals"]
    assert default["params"] == {} and fast["params"] == {"effort": 1} and fast["n_files"] == 2
    assert fast["n_bytes_out"] != default["n_bytes_out"]  # effort 1 really ran
    md = out["md"].read_text()
    assert "`jpeg-xl-lossless`" in md and "`jpeg-xl-lossless (effort=1)`" in md
    lines = list(csv.DictReader(io.StringIO(out["csv"].read_text())))
    assert [json.loads(x["params"]) if x["params"] else {} for x in lines[:2]] == [{}, {"effort": 1}]

    res = CliRunner().invoke(bench, [*crops, "--codec", "png", "--param", "jpeg-xl-lossless:effort=1"])
    assert res.exit_code == 1 and "not in this run: jpeg-xl-lossless" in res.output
    res = CliRunner().invoke(bench, [*crops, "--codec", "png", "--param", "png:effort=1"])  # png takes no parameters
    assert res.exit_code == 1 and "takes no parameters" in res.output
    res = CliRunner().invoke(bench, [*crops, "--param", "effort=1"])
    assert res.exit_code == 2 and "CODEC:KEY=VALUE" in res.output
    res = CliRunner().invoke(bench, [*crops, "--param", "no-such-codec:effort=1"])
    assert res.exit_code == 1 and "unknown codec" in res.output


def test_load_reference_formats(tmp_path):
    from gencodec.errors import UnsupportedInputError

    shipped = Path(__file__).resolve().parent.parent / "benchmarks" / "references"
    for p in shipped.glob("*.json"):
        (curve,) = report.load_reference(p)
        assert len(curve["bpp"]) == len(curve["psnr"]) >= 4 and curve["source"]
    p = tmp_path / "compressai.json"
    p.write_text(json.dumps({"name": "x", "results": {"bpp": [0.1, 0.2], "psnr-rgb": [28.0, 30.0]}}))
    assert report.load_reference(p)[0]["psnr"] == [28.0, 30.0]
    p.write_text(json.dumps({"curves": [{"bpp": [1, 2], "psnr": [30, 33]}, {"name": "b", "bpp": [1, 2], "psnr": [31, 34]}]}))
    assert [c["name"] for c in report.load_reference(p)] == ["compressai[0]", "b"]
    p.write_text(json.dumps({"name": "bad", "bpp": [1, 2], "psnr": [30]}))
    with pytest.raises(UnsupportedInputError):
        report.load_reference(p)


def test_json_has_no_infinities():
    text = report.to_json({"rows": [{"psnr": math.inf}], "x": [1.5]})
    assert json.loads(text) == {"rows": [{"psnr": "inf"}], "x": [1.5]}


def test_rd_summary_ignores_lossless_points():
    curves = {
        "jpeg": [dict(quality=q, bpp=b, psnr=p, ms_ssim=None) for q, b, p in ((1, 0.3, 29.0), (2, 0.6, 32.0), (3, 1.2, 35.0), (4, 9.0, math.inf))],
        "other": [dict(quality=q, bpp=0.8 * b, psnr=p, ms_ssim=None) for q, b, p in ((1, 0.3, 29.0), (2, 0.6, 32.0), (3, 1.2, 35.0))],
    }
    s = report.rd_summary(curves)
    assert s["bd_rate_pct"]["jpeg"]["other"] == pytest.approx(-20.0)
    assert s["bpp_at_psnr"]["jpeg"]["32"] == pytest.approx(0.6)
    assert s["bpp_at_psnr"]["jpeg"]["38"] is None


def test_benchmark_script_regenerates_markdown(tmp_path):
    """benchmarks/run.py: one section (restricted to gzip) -> JSON, CSV, plot -> BENCHMARKS.md."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_script", CORPORA.parent / "benchmarks" / "run.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--codec", "gzip", "--out", str(tmp_path / "res"), "--docs", str(tmp_path / "docs")]
    assert script.main(["canterbury", *args]) == 0
    assert script.main(["markdown", *args]) == 0
    doc = json.loads((tmp_path / "res" / "canterbury.json").read_text())
    assert doc["settings"]["paths"] == ["corpora/canterbury"] and len(doc["rows"]) == 11
    assert doc["totals"][0]["n_bytes_in"] == sum(
        f["bytes"] for f in json.loads((CORPORA / "canterbury" / "manifest.json").read_text())["files"])
    md = (tmp_path / "docs" / "BENCHMARKS.md").read_text()
    assert "## Canterbury corpus, byte codecs" in md and "`gzip`" in md and "Not run yet" in md
    with Image.open(tmp_path / "docs" / "canterbury.png") as im:
        assert im.format == "PNG"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- headline:start -->\nold\n<!-- headline:end -->\n\n## After\n")
    assert script.update_readme(tmp_path / "res", readme)
    text = readme.read_text()
    assert "old" not in text and "**Canterbury**" in text and "| `gzip` |" in text and text.endswith("## After\n")
    assert script.update_readme(tmp_path / "res", readme) and readme.read_text() == text  # idempotent


def test_ideal_bits_and_overhead_are_reported(small_files, monkeypatch):
    from gencodec.codec import Encoded
    from gencodec.codecs.classic_bytes import GzipCodec

    real = GzipCodec.encode
    monkeypatch.setattr(GzipCodec, "encode", lambda self, data, **kw: Encoded(real(self, data).payload, {}, {"ideal_bits": 4.0 * len(data)}))
    doc = runner.run_bench([str(p) for p in small_files[:2]], ["gzip"], workers=0, progress=False)
    for r in doc["rows"]:
        assert r["ideal_bits"] == 4.0 * r["n_bytes_in"]
        assert r["coding_overhead_pct"] == pytest.approx(100 * (8 * r["payload_bytes"] - r["ideal_bits"]) / r["ideal_bits"])
        assert r["frame_overhead_pct"] > r["coding_overhead_pct"]  # the header costs bits too
    (t,) = doc["totals"]
    assert t["ideal_bits"] == 4.0 * t["n_bytes_in"]
    assert "| ideal | overhead |" in report.markdown_lossless(doc)


def test_progress_bar_on_stderr(small_files, capsys):
    runner.run_bench([str(small_files[0])], ["gzip", "bz2"], workers=0, progress=True)
    captured = capsys.readouterr()
    assert "2/2" in captured.err and captured.out == ""


@pytest.mark.skipif(not _codec_ready("jpeg"), reason="jpeg codec not available")
def test_default_lossy_set_leaves_out_codecs_without_a_sweep(lossy_image, monkeypatch):
    monkeypatch.setattr(runner, "default_codecs", lambda files, lossy: ["jpeg", "webp"])
    monkeypatch.setitem(runner.DEFAULT_QUALITIES, "jpeg", (50, 90))
    monkeypatch.delitem(runner.DEFAULT_QUALITIES, "webp")
    doc = runner.run_bench([lossy_image], lossy=True, workers=0, ms_ssim=False, progress=False)
    assert doc["settings"]["codecs"] == ["jpeg"] and "webp" in doc["settings"]["left_out"]
    assert [r["quality"] for r in doc["rows"]] == [50, 90]
    from gencodec.errors import UnsupportedInputError

    with pytest.raises(UnsupportedInputError, match="quality"):
        runner.run_bench([lossy_image], ["webp"], lossy=True, workers=0, progress=False)


def test_lossy_summary_quotes_the_bench_s_own_bd_rates():
    """benchmarks/lossy_summary.py (the numbers the README quotes) agrees with the BD-rates the bench
    itself stored in the committed Kodak results, and adds the learned ladder's 1-6 part."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lossy_summary", CORPORA.parent / "benchmarks" / "lossy_summary.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    doc = json.loads((CORPORA.parent / "benchmarks" / "results" / "kodak_lossy.json").read_text())
    lines = {ln.split(":", 1)[0].strip(): ln for ln in script.summary(doc, 6)[1:]}
    for codec, bd in doc["rd_summary"]["bd_rate_pct"]["jpeg"].items():
        if codec in lines:
            assert f"BD-rate vs JPEG {bd:+.1f} %" in lines[codec]
    assert "(1-6: " in lines["hyperprior"] and "(1-6: " not in lines["webp"]
    assert "BD-rate" not in lines["jpeg"] and "decode" in lines["jpeg"]
