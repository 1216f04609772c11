#!/usr/bin/env python3
"""Cross-checks the loadgen's PESQ with the ITU-T P.862 reference implementation.

The loadgen scores audio with the pure-Rust `pesq` crate. This script re-scores the very same
aligned signals (written by `bridgepool-loadgen ... --dump-audio DIR`) with PyPI's `pesq`, a
wrapper of the ITU-T P.862 reference C code, and prints both figures side by side.

    python3 -m venv target/pesq-venv && target/pesq-venv/bin/pip install pesq numpy
    target/release/bridgepool-loadgen demo --calls 10 --seconds 12 --quality-calls 10 \
        --dump-audio target/pesq-dump --json target/pesq-dump/report.json
    target/pesq-venv/bin/python scripts/crosscheck-pesq.py target/pesq-dump
"""
import json
import sys
import wave
from pathlib import Path

import numpy as np
from pesq import pesq


def read(path):
    with wave.open(str(path)) as w:
        assert w.getframerate() == 8000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)


def main():
    folder = Path(sys.argv[1])
    report = json.loads((folder / "report.json").read_text())
    ours = {(q["call_id"], q["direction"]): q.get("pesq_nb") for q in report.get("quality", [])}
    diffs = []
    print(f"{'stream':<40} {'voice':<16} {'loadgen':>8} {'ITU ref':>8} {'diff':>6}")
    for ref in sorted(folder.glob("*-ref.wav")):
        stem = ref.name[: -len("-ref.wav")]
        call, direction = stem.rsplit("-", 1)
        score = pesq(8000, read(ref), read(folder / f"{stem}-deg.wav"), "nb")
        mine = ours.get((call, direction))
        voice = next((q["voice"] for q in report["quality"]
                      if (q["call_id"], q["direction"]) == (call, direction)), "")
        diff = "" if mine is None else f"{mine - score:+.2f}"
        if mine is not None:
            diffs.append(mine - score)
        print(f"{stem:<40} {voice:<16} {mine if mine is not None else float('nan'):8.2f} {score:8.2f} {diff:>6}")
    if diffs:
        d = np.array(diffs)
        print(f"{len(d)} streams: loadgen - reference mean {d.mean():+.3f}, max |diff| {np.abs(d).max():.3f}")


if __name__ == "__main__":
    main()
