"""benchmarks/common.write_table: a rerun replaces only the generated part of a RESULTS.md section."""

import importlib.util
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
spec = importlib.util.spec_from_file_location("benchmark_common", BENCHMARKS / "common.py")
common = importlib.util.module_from_spec(spec)
spec.loader.exec_module(common)


def test_a_rerun_keeps_the_text_written_by_hand_around_the_generated_part(tmp_path):
    results = tmp_path / "RESULTS.md"
    common.write_table("Speed (bench.py)", "| a | b |\n|---|---|\n| 1 | 2 |", results)
    common.write_table("Other (other.py)", "other table", results)
    text = results.read_text()
    text = text.replace("## Speed (bench.py)\n\n", "## Speed (bench.py)\n\n**Best:** by hand, before.\n\n")
    text = text.replace(f"{common.GENERATED_END}\n\n## Other", f"{common.GENERATED_END}\n\nRerun: by hand, after.\n\n## Other")
    results.write_text(text)

    common.write_table("Speed (bench.py)", "| a | b |\n|---|---|\n| 3 | 4 |", results)

    text = results.read_text()
    speed = text[text.index("## Speed"):text.index("## Other")]
    assert "| 3 | 4 |" in speed and "| 1 | 2 |" not in speed
    assert speed.index("**Best:** by hand, before.") < speed.index(common.GENERATED_BEGIN)
    assert speed.index(common.GENERATED_END) < speed.index("Rerun: by hand, after.")
    assert "other table" in text  # the next section is untouched


def test_a_section_without_markers_is_written_whole_between_markers(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Old (old.py)\n\nstale table\n\n## Next\n\nkept\n")
    common.write_table("Old (old.py)", "fresh table", results)
    text = results.read_text()
    assert "stale table" not in text and "kept" in text
    assert re.search(rf"## Old \(old.py\)\n\n{re.escape(common.GENERATED_BEGIN)}\nfresh table\n{re.escape(common.GENERATED_END)}\n\n## Next", text)


def test_results_md_markers_come_in_pairs_inside_one_section():
    text = (BENCHMARKS / "RESULTS.md").read_text()
    for section in re.split(r"(?m)^## ", text)[1:]:
        markers = re.findall(rf"{re.escape(common.GENERATED_BEGIN)}|{re.escape(common.GENERATED_END)}", section)
        assert markers in ([], [common.GENERATED_BEGIN, common.GENERATED_END]), section.split("\n")[0]
