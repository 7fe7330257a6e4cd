"""Audio: a generated WAV in an <audio> player whose position bar can seek.

The callback makes a few seconds of sine tones with the standard library's ``wave`` module and returns the
buffer. The file route answers HTTP range requests (206 Partial Content), which is what lets the browser
seek: without them Chrome plays the file but cannot jump to another position.

A video works the same way (return the .mp4 or .webm bytes or path to ``FileOutput("video", "src")`` of an
``html.Video(controls=True)``), but this example has none: making a video file needs an encoder such as
ffmpeg, which the standard library does not have.

Run:  pip install -e . && python examples/media.py   then open http://127.0.0.1:8050
"""

from __future__ import annotations

import io
import math
import os
import sys
import wave
from array import array

from dash_extensions.enrich import DashProxy, Input, html

from dfc_transform import FileOutput, FileServeTransform

RATE = 22_050  # samples per second
TONES = (440.0, 554.37, 659.25, 880.0)  # A4, C#5, E5, A5: one second each
TONE_SECONDS = 1.0
DURATION = len(TONES) * TONE_SECONDS


def make_wav() -> io.BytesIO:
    """Sine tones, 16-bit mono, with short fades so that the steps do not click."""
    per_tone = int(RATE * TONE_SECONDS)
    fade = RATE // 100
    samples = array("h")
    for freq in TONES:
        for i in range(per_tone):
            envelope = min(1.0, i / fade, (per_tone - i) / fade)
            samples.append(int(12_000 * envelope * math.sin(2 * math.pi * freq * i / RATE)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        if sys.byteorder == "big":
            samples.byteswap()  # WAV samples are little-endian
        wav.writeframes(samples.tobytes())
    return buf


app = DashProxy(__name__, transforms=[FileServeTransform()], title="dfc_transform: audio")
server = app.server

app.layout = html.Div(
    [
        html.H2("dfc_transform: audio"),
        html.Button("Make a tune", id="make", n_clicks=0),
        html.P(f"{DURATION:g} seconds of sine tones; drag the position bar to seek."),
        html.Audio(id="player", controls=True, style={"width": "480px"}),
    ],
    style={"fontFamily": "sans-serif", "margin": "24px"},
)


@app.callback(
    FileOutput("player", "src", filename="tones.wav"), Input("make", "n_clicks"), prevent_initial_call=True
)
def make(_clicks: int) -> io.BytesIO:
    return make_wav()


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8050")), debug=False)
