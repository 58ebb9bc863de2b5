"""The example notebook runs headlessly, offline, in a fresh kernel (nbclient)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "explain_tour.ipynb"

# Put before the notebook's own cells: every Python-level socket connection or name lookup
# (what requests / httpx / urllib / huggingface_hub would do) raises and is recorded. The
# kernel's own channels are ZeroMQ sockets in C and are not affected.
GUARD = """
import socket, sys
_network_attempts = []
def _no_network(event, args):
    if event == "socket.connect":
        sock, address = args
        if getattr(sock, "family", None) != socket.AF_UNIX:
            _network_attempts.append(("connect", repr(address)))
            raise ConnectionRefusedError(f"network disabled by the test: {address!r}")
    elif event == "socket.getaddrinfo":
        _network_attempts.append(("getaddrinfo", repr(args[0])))
        raise socket.gaierror(f"network disabled by the test: {args[0]!r}")
sys.addaudithook(_no_network)
"""
CHECK = "assert _network_attempts == [], _network_attempts"


@pytest.mark.slow
def test_tour_notebook_runs_offline(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells = [nbformat.v4.new_code_cell(GUARD), *notebook.cells,
                      nbformat.v4.new_code_cell(CHECK)]
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg",
                # anything that ignores the audit hook still has nowhere to go
                "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"})
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)  # raises CellExecutionError on any error, the CHECK cell included

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("class='explain-attn'" in h for h in html), "attention view missing"
    assert any("class=explain-report" in h for h in html), "report not displayed inline"
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for o in outputs)
    for symptom in ("ConnectionError", "MaxRetryError", "gaierror", "network disabled"):
        assert symptom not in text
    assert "index.html" in text and "manifest.json" in text
    # the report is saved next to the notebook (here: its working directory), not in a temp dir
    assert (tmp_path / "tour" / "index.html").is_file()
    # a figure as the last line of a cell shows as a PNG without %matplotlib inline
    figures = [o for o in outputs if "Figure size" in str(o.get("data", {}).get("text/plain", ""))]
    assert figures and all("image/png" in o["data"] for o in figures)
    # the model shows a one-line repr, not kilobytes of module repr
    model_repr = [str(o["data"]["text/plain"]) for o in outputs
                  if str(o.get("data", {}).get("text/plain", "")).startswith("LoadedModel(")]
    assert model_repr and all(len(r) < 300 for r in model_repr)
