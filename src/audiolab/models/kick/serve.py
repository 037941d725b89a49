"""``python -m audiolab.models.kick.serve ckpt=RUN [vocoder=RUN] [host=127.0.0.1] [port=8000] [threads=2]``

A small web page (Flask, CPU only): keywords, count, steps, sampler, guidance, seed -> one audio player, mel image
and download link per generated kick. ``GET /`` the page, ``GET /api/info`` model settings and vocabulary,
``POST /api/generate`` (JSON ``{keywords, n, steps, seed, sampler, cfg_scale}``) -> ``{items: [{id, seed, audio,
mel, download}], unknown, keywords_used, seconds_per_kick}``, ``GET /audio/<id>.wav``, ``GET /mel/<id>.png``.
The last ``keep`` results stay in memory. One generation at a time (a lock; the model is shared).
"""

from __future__ import annotations

import io
import sys
import threading
import uuid
from collections import OrderedDict
from typing import Any

import torch

from audiolab.models.kick.diffusion import SAMPLERS

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>audiolab kicks</title>
<style>
 body { font-family: sans-serif; margin: 2em; max-width: 60em; }
 label { margin-right: 1em; } input { width: 6em; } #keywords { width: 20em; }
 .kick { display: inline-block; margin: 0.5em; padding: 0.5em; border: 1px solid #ccc; }
 .kick img { display: block; width: 256px; height: 128px; } #status { color: #555; }
 .warn { color: #a40; }
</style></head>
<body>
<h1>Kick generator</h1>
<form id="form">
 <label>keywords <input id="keywords" name="keywords" placeholder="e.g. long, sub"></label>
 <label>count <input id="n" name="n" type="number" min="1" max="32" value="4"></label>
 <label>steps <input id="steps" name="steps" type="number" min="1" max="1000" value="50"></label>
 <label>seed <input id="seed" name="seed" type="number" value="0"></label>
 <label>sampler <select id="sampler" name="sampler">SAMPLER_OPTIONS</select></label>
 <label>guidance <input id="cfg_scale" name="cfg_scale" type="number" step="0.5" value="3"></label>
 <button id="generate" type="submit">Generate</button>
</form>
<p id="status"></p><p id="warning" class="warn"></p>
<div id="results"></div>
<p>Known keywords: <span id="vocab">VOCAB</span></p>
<script>
document.getElementById('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const body = {};
  for (const k of ['keywords', 'n', 'steps', 'seed', 'sampler', 'cfg_scale']) body[k] = document.getElementById(k).value;
  const status = document.getElementById('status');
  status.textContent = 'generating...';
  document.getElementById('warning').textContent = '';
  const res = await fetch('/api/generate', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                            body: JSON.stringify(body)});
  const data = await res.json();
  if (!res.ok) { status.textContent = 'error: ' + data.error; return; }
  if (data.unknown.length) document.getElementById('warning').textContent =
      'unknown keywords ignored: ' + data.unknown.join(', ');
  const box = document.getElementById('results');
  box.innerHTML = '';
  for (const it of data.items) {
    const div = document.createElement('div');
    div.className = 'kick';
    div.innerHTML = `<div>seed ${it.seed}</div><img class="mel" src="${it.mel}" alt="mel seed ${it.seed}">` +
      `<audio controls preload="auto" src="${it.audio}"></audio><br><a class="download" href="${it.download}" ` +
      `download="${it.filename}">download</a>`;
    box.appendChild(div);
  }
  status.textContent = `done: ${data.items.length} kicks, ${data.seconds_per_kick.toFixed(2)} s per kick ` +
                       `(keywords used: ${data.keywords_used.join(', ') || 'none'})`;
});
</script>
</body></html>
"""


def create_app(pipe: Any, keep: int = 64, max_n: int = 32, max_steps: int = 1000):
    """The Flask app around a :class:`~audiolab.models.kick.pipeline.KickPipeline`."""
    from flask import Flask, Response, jsonify, request

    from audiolab.models.kick.generate import file_stem, keyword_list
    from audiolab.models.kick.pipeline import spawn_seeds
    from audiolab.models.kick.plots import mel_png

    app = Flask("audiolab-kick")
    lock = threading.Lock()
    results: OrderedDict[str, dict[str, Any]] = OrderedDict()
    options = "".join(f'<option value="{s}">{s}</option>' for s in SAMPLERS)
    vocab = ", ".join(pipe.vocabulary.words)
    page = PAGE.replace("SAMPLER_OPTIONS", options).replace("VOCAB", vocab)

    @app.get("/")
    def index():
        return Response(page, mimetype="text/html")

    @app.get("/api/info")
    def info():
        return jsonify({"settings": pipe.settings(), "vocabulary": pipe.vocabulary.words})

    @app.post("/api/generate")
    def generate():
        body = request.get_json(silent=True) or {}
        try:
            n, steps, seed = int(body.get("n", 1)), int(body.get("steps", 50)), int(body.get("seed", 0))
            cfg_scale = float(body.get("cfg_scale", 3.0))
            sampler = str(body.get("sampler", "ddim"))
            if not 1 <= n <= max_n:
                raise ValueError(f"count must be in 1..{max_n}, got {n}")
            if not 1 <= steps <= max_steps:
                raise ValueError(f"steps must be in 1..{max_steps}, got {steps}")
            if sampler not in SAMPLERS:
                raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        except (TypeError, ValueError) as exc:
            return jsonify({"error": str(exc)}), 400
        requested = keyword_list(str(body.get("keywords", "")))
        known, unknown = pipe.vocabulary.split_known(requested)
        seeds = spawn_seeds(seed, n)
        with lock, torch.inference_mode():
            gen = pipe.generate([known] * n, seeds, sampler=sampler, steps=steps, cfg_scale=cfg_scale)
        items = []
        for k, s in enumerate(gen.seeds):
            rid = uuid.uuid4().hex[:12]
            results[rid] = {"audio": gen.audio[k].numpy(), "mel": gen.mels[k], "name": file_stem(known, s) + ".wav"}
            items.append({"id": rid, "seed": s, "audio": f"/audio/{rid}.wav", "mel": f"/mel/{rid}.png",
                          "download": f"/audio/{rid}.wav?download=1", "filename": results[rid]["name"]})
        while len(results) > keep:
            results.popitem(last=False)
        return jsonify({"items": items, "unknown": unknown, "keywords_used": known,
                        "seconds_per_kick": gen.timings["total_s"] / n})

    @app.get("/audio/<rid>.wav")
    def audio(rid: str):
        if rid not in results:
            return jsonify({"error": f"unknown or expired result {rid!r}"}), 404
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, results[rid]["audio"], pipe.mel.sample_rate, subtype="PCM_16", format="WAV")
        headers = {}
        if request.args.get("download"):
            headers["Content-Disposition"] = f'attachment; filename="{results[rid]["name"]}"'
        return Response(buf.getvalue(), mimetype="audio/wav", headers=headers)

    @app.get("/mel/<rid>.png")
    def mel(rid: str):
        if rid not in results:
            return jsonify({"error": f"unknown or expired result {rid!r}"}), 404
        return Response(mel_png(results[rid]["mel"]), mimetype="image/png")

    return app


def main(argv: list[str] | None = None) -> None:
    from audiolab.models.kick.pipeline import KickPipeline

    args = {"ckpt": None, "vocoder": None, "host": "127.0.0.1", "port": "8000", "threads": None}
    for item in list(sys.argv[1:] if argv is None else argv):
        key, sep, value = item.partition("=")
        if not sep or key not in args:
            raise SystemExit(f"kick serve: expected key=value with key in {sorted(args)}, got {item!r}")
        args[key] = value
    if not args["ckpt"]:
        raise SystemExit("kick serve: ckpt=<kick_unet or kick_pipeline run folder / .ckpt> is required")
    if args["threads"]:
        torch.set_num_threads(int(args["threads"]))
    pipe = KickPipeline.from_checkpoint(args["ckpt"], vocoder=args["vocoder"])
    app = create_app(pipe)
    print(f"serving kicks on http://{args['host']}:{args['port']}/", flush=True)
    app.run(host=args["host"], port=int(args["port"]), threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
