"""Figure 15, measured in a real kernel: a long session in one panel stays light.

A notebook is executed with nbclient against the emulator (here, in the benchmark's
process). It shows a panel, clicks Generate over and over (each click waits for its run),
and after the first runs and after all of them counts the live widgets (each one a model
in the browser and in the saved widget state) and reads the kernel's resident memory,
after a garbage collection.
"""

from __future__ import annotations

import json
from pathlib import Path

from .common import TOKEN, Figure, Sizes, emulator_and_client
from .notebooks import execute

_CELLS = [
    """\
import gc, json, resource
from pathlib import Path
from ipywidgets.widgets.widget import _instances
from nanobanana_widgets import Client, History, PromptPanel

def rss_mb():
    gc.collect()
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # not Linux: the peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

client = Client({token!r}, base_url={base_url!r}, poll_interval=0.05)
history = History("session-history")
panel = PromptPanel(client, history=history, save_dir="saved")
panel""",
    """\
def runs(start, stop):
    for i in range(start, stop):
        panel.prompt = f"iteration {{i}}: a lighthouse at dusk, oil painting"
        panel.generate_button.click()
        run = panel.runs[-1]
        run.wait(60)
        assert run.status == "done", panel.messages[-1]
    history.flush(60)

marks = {{"start": (len(_instances), rss_mb())}}
runs(0, {first})
marks["first"] = (len(_instances), rss_mb())
runs({first}, {last})
marks["last"] = (len(_instances), rss_mb())
Path({out!r}).write_text(json.dumps(marks))""",
]


def long_session(sizes: Sizes, workdir: Path) -> Figure:
    """Figure 15: live widgets and kernel memory after many panel runs against a few."""
    first, last = sizes.session_runs
    out = workdir / "session.json"
    folder = workdir / "session"
    folder.mkdir(exist_ok=True)
    with emulator_and_client(0.0) as (emu, _client):
        cells = [cell.format(token=TOKEN, base_url=emu.base_url, first=first, last=last,
                             out=str(out)) for cell in _CELLS]
        execute(cells, folder, timeout=60 + 3 * last)
    marks = json.loads(out.read_text())
    (w0, m0), (w1, m1), (w2, m2) = marks["start"], marks["first"], marks["last"]
    more = m2 - m1
    met = w2 <= 300 and more <= 40
    return Figure(
        15, f"live widgets and kernel memory after {last} panel runs against {first}",
        f"{w2:,} widgets, +{more:.1f} MB", "≤ 300 widgets, ≤ 40 MB more",
        f"after {first} runs: {w1:,} widgets ({m1:.0f} MB)", met,
        notes=[
            f"One panel in a real kernel (nbclient), a history in the notebook's folder, "
            f"the emulator at latency 0: Generate clicked {last} times, each run waited for. "
            f"Live widgets (`ipywidgets` models in the kernel, each also a model in the "
            f"browser and in the saved widget state): {w0:,} with the panel shown, {w1:,} "
            f"after {first} runs, {w2:,} after {last}. Kernel resident memory after a "
            f"garbage collection: {m0:.0f} MB, {m1:.0f} MB, {m2:.0f} MB; "
            f"{more:+.1f} MB from run {first} to run {last}. The newest 12 result cards and "
            "3 finished run rows stay live; older cards close their widgets and their "
            "images' downloaded bytes are released (the results stay in `panel.results`, "
            "the images in the history, whose strip pages back through them). Before issue "
            "13: 4,460 widgets and +132 MB after 200 runs.",
        ],
        raw=marks,
    )
