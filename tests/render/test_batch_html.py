"""The batch job's HTML (live view and static rendition): counts, bar, and every
user-supplied string escaped."""

from __future__ import annotations

from nanobanana_widgets.jobs import JobSummary, RowError
from nanobanana_widgets.render.batch import duration, job_html, plan_html, progress_html

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


def summary(**kwargs: object) -> JobSummary:
    base: dict[str, object] = dict(name="products", state="running", total=1000,
                                   succeeded=480, failed=7, uncertain=1, running=83,
                                   queued=430, paid=1000, paid_so_far=480, rate=19.6, eta=26.0,
                                   elapsed=25.0, pace=20.3, rate_limited=12)
    base.update(kwargs)
    return JobSummary(**base)  # type: ignore[arg-type]


def test_progress_reads_like_tqdm() -> None:
    html = progress_html(summary())
    for text in ("487 / 1,000", "(49%)", "✓ 480 succeeded", "✗ 7 failed (1 may have been billed)",
                 "⟳ 83 running", "430 queued", "19.6 rows/s", "ETA 26 s", "elapsed 25 s",
                 "paid so far 480 of 1,000",
                 "12 rate-limited (429, not billed), pacing 20.3 submits/s"):
        assert text in html, text
    assert 'aria-valuenow="487"' in html and "width:48.000%" in html
    assert "ETA" not in progress_html(summary(state="paused"))
    assert duration(185) == "3 min 05 s" and duration(None) == "—"
    assert duration(7300) == "2 h 01 min"


def test_hostile_text_is_escaped_everywhere() -> None:
    for bad in HOSTILE:
        s = summary(name=bad, reason=f"paused: {bad}", state="paused",
                    errors=(RowError(3, f"a cat {bad}", "ContentRefusedError", f"no {bad}", bad),))
        html = job_html(s, models=[bad], source=bad)
        assert "<script>" not in html and "<img src=x" not in html
        assert "onerror=alert(1)>" not in html.replace("&gt;", "")
        assert "&lt;script&gt;" in html or "&lt;img src=x onerror=alert(1)&gt;" in html
        assert 'title="' in html and "row 3" in html
    assert "<script>" not in plan_html(2, 2, HOSTILE, HOSTILE[0])


def test_the_static_rendition_says_what_waits_for_confirmation() -> None:
    html = job_html(summary(state="awaiting confirmation", succeeded=0, failed=0, uncertain=0,
                            running=0, queued=1000), max_calls=16)
    assert "more than max_calls=16" in html and "job.confirm()" in html
    assert 'class="nbw-batch"' in html and "<style>" in html
