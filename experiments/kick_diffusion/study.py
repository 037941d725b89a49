"""Measure the trained kick pipeline: VAE held-out mel L1, vocoder resynthesis, generation metrics per sampler/steps.

    python experiments/kick_diffusion/study.py --vae RUN --vocoder RUN --unet RUN [--out experiments/kick_diffusion/results.json]

Everything on the held-out splits of the kick datamodule the runs were trained on (real = Debian packages' drums,
synthetic = the labelled set), separately. CPU, ``--threads`` torch threads.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _datamodule(cfg_data, mode: str = "mel"):
    import inspect

    from hydra.utils import instantiate
    from omegaconf import OmegaConf, open_dict

    from audiolab.models.kick.data import KickDataModule

    cfg = OmegaConf.create(OmegaConf.to_container(cfg_data, resolve=True))
    known = set(inspect.signature(KickDataModule.__init__).parameters)
    with open_dict(cfg):
        cfg.mode = mode
        for key in [k for k in cfg if k != "_target_" and k not in known]:  # keys of older configs (drop_last)
            cfg.pop(key)
    dm = instantiate(cfg)
    dm.setup("test")
    return dm


def _groups(dm, split: str) -> dict[str, list[int]]:
    rows = dm.rows(split)
    return {"real": [i for i, r in enumerate(rows) if r["source"] != "synthetic"],
            "synthetic": [i for i, r in enumerate(rows) if r["source"] == "synthetic"]}


@torch.no_grad()
def vae_metrics(vae_module, dm) -> dict:
    out = {}
    for split in ("val", "test"):
        mels = dm.mels(split)
        recon = torch.cat([vae_module.vae(mels[i:i + 32], sample=False)["recon"] for i in range(0, len(mels), 32)])
        for g, idx in _groups(dm, split).items():
            if idx:
                out[f"{split}_{g}_mel_l1"] = float((recon[idx] - mels[idx]).abs().mean())
                out[f"{split}_{g}_n"] = len(idx)
    return out


@torch.no_grad()
def vocoder_metrics(voc_module, vae_module, dm, max_per_group: int = 64) -> dict:
    """Resynthesis of held-out clips from their mels and from their VAE reconstructions (mel L1, MR-STFT)."""
    gen = voc_module.generator
    out = {}
    for g, idx in _groups(dm, "test").items():
        idx = idx[:max_per_group]
        if not idx:
            continue
        mels = dm.mels("test")[idx]
        audio = dm.waveforms("test")[idx]
        recon = vae_module.vae(mels, sample=False)["recon"] if vae_module is not None else None
        for name, inp in (("real_mel", mels), ("vae_mel", recon)):
            if inp is None:
                continue
            t0 = time.perf_counter()
            fake = torch.cat([gen(inp[i:i + 8, 0])[:, :88200] for i in range(0, len(inp), 8)])
            dt = (time.perf_counter() - t0) / len(inp)
            mel_fake = voc_module.log_mel(fake)
            out[f"{g}_{name}_mel_l1"] = float(F.l1_loss(mel_fake, mels[:, 0]))
            out[f"{g}_{name}_mrstft"] = float(voc_module.mrstft(fake, audio))
            out[f"{g}_{name}_s_per_kick"] = dt
        out[f"{g}_n"] = len(idx)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--vae")
    p.add_argument("--vocoder")
    p.add_argument("--unet", default=None, help="a kick_unet / kick_pipeline run (omit: VAE and vocoder only)")
    p.add_argument("--data", default=None, help="data root (default: the one stored with --unet, else data/kick)")
    p.add_argument("--out", default="experiments/kick_diffusion/results.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-generate", type=int, default=100)
    p.add_argument("--keyword-n", type=int, default=24)
    p.add_argument("--configs", default="ddim:50,dpmsolver++:20,dpmsolver++:10,ddim:10")
    p.add_argument("--cfg-scale", type=float, default=3.0)
    p.add_argument("--plots", default="dpmsolver++:20", help="sampler:steps of the figures ('' = no figures)")
    p.add_argument("--tables", action="store_true", help="print the README tables of --out and stop")
    args = p.parse_args()
    if args.tables:
        print(tables(json.loads(Path(args.out).read_text())))
        return
    if not (args.vae and args.vocoder):
        p.error("--vae and --vocoder are required (except with --tables)")
    torch.set_num_threads(args.threads)
    from audiolab.models.kick.evaluation import evaluate_generation
    from audiolab.models.kick.pipeline import load_kick_module

    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    vae_mod, _ = load_kick_module(args.vae, ("KickVAEModule",))
    voc_mod, _ = load_kick_module(args.vocoder, ("KickVocoderModule",))
    _, vae_trained = load_kick_module(args.vae, ("KickVAEModule",))
    unet_mod = None
    data_cfg = vae_trained.config.data
    if args.unet:
        unet_mod, trained = load_kick_module(args.unet, ("KickDiffusionModule",))
        data_cfg = trained.config.data
    if args.data:
        from omegaconf import open_dict

        with open_dict(data_cfg):
            data_cfg.root = args.data
    dm = _datamodule(data_cfg)
    results["runs"] = {"vae": args.vae, "vocoder": args.vocoder, "unet": args.unet, "threads": args.threads}
    if "vae" not in results:
        results["vae"] = vae_metrics(vae_mod, dm)
        out_path.write_text(json.dumps(results, indent=1))
    if "vocoder" not in results:
        voc_mod.generator.remove_weight_norm()
        results["vocoder"] = vocoder_metrics(voc_mod, vae_mod, dm)
        out_path.write_text(json.dumps(results, indent=1))
    if unet_mod is None:
        return
    pipe = unet_mod.pipeline()
    pipe.vocoder = None
    results.setdefault("generation", {})
    for item in filter(None, args.configs.split(",")):
        sampler, steps = item.split(":")
        key = f"{sampler}_{steps}_cfg{args.cfg_scale:g}"
        if key in results["generation"]:
            continue
        t0 = time.perf_counter()
        res = evaluate_generation(pipe, dm, n_generate=args.n_generate, keyword_n=args.keyword_n, sampler=sampler,
                                  steps=int(steps), cfg_scale=args.cfg_scale, batch_size=16)
        res["wall_s"] = time.perf_counter() - t0
        results["generation"][key] = res
        out_path.write_text(json.dumps(results, indent=1))
        print(key, json.dumps({g: {k: round(v, 4) for k, v in res[g].items() if isinstance(v, float)}
                               for g in ("real", "synthetic") if g in res}), flush=True)
    if args.plots:
        sampler, steps = args.plots.split(":")
        figures(pipe, dm, results, out_path.parent, sampler, int(steps), args.cfg_scale)


def tables(r: dict) -> str:
    """Markdown tables of a results.json (what the README shows)."""
    f = "{:.3f}".format
    lines = ["| VAE held-out mel L1 | real | synthetic |", "|---|---|---|"]
    for split in ("val", "test"):
        v = r["vae"]
        lines.append(f"| {split} (n = {v[f'{split}_real_n']} / {v[f'{split}_synthetic_n']}) | "
                     f"{f(v[f'{split}_real_mel_l1'])} | {f(v[f'{split}_synthetic_mel_l1'])} |")
    v = r["vocoder"]
    lines += ["", f"| vocoder input (test split: {v['real_n']} real, {v['synthetic_n']} synthetic) | real mel L1 | "
              "real MR-STFT | synthetic mel L1 | synthetic MR-STFT |",
              "|---|---|---|---|---|"]
    for name in ("real_mel", "vae_mel"):
        lines.append(f"| {name.replace('_', ' ')} | {f(v[f'real_{name}_mel_l1'])} | {f(v[f'real_{name}_mrstft'])} | "
                     f"{f(v[f'synthetic_{name}_mel_l1'])} | {f(v[f'synthetic_{name}_mrstft'])} |")
    gen = r.get("generation") or {}
    if gen:
        lines += ["", "| sampler, steps, CFG | group | KID (floor) | FD (floor) | NN dist gen / held-out | "
                  "near copies |", "|---|---|---|---|---|---|"]
        for g in gen.values():
            s = g["settings"]
            for grp in ("real", "synthetic"):
                if grp in g:
                    d = g[grp]
                    lines.append(f"| {s['sampler']} {s['steps']}, CFG {s['cfg_scale']:g} | {grp} (n = {d['n_generated']} vs {d['n_test']}) | "
                                 f"{d['kid']:.2f} ± {d['kid_std']:.2f} ({d['kid_floor']:.2f}) | "
                                 f"{d['fd']:.1f} ({d['fd_floor']:.1f}) | {d['nn_gen_median']:.2f} / "
                                 f"{d['nn_heldout_median']:.2f} | {100 * d['near_copies']:.0f} % |")
        lines += ["", "| sampler, steps, CFG | keyword stump accuracy gen (held-out) | Cohen's d gen (held-out) |",
                  "|---|---|---|"]
        for g in gen.values():
            s, k = g["settings"], g.get("keyword_summary")
            if k:
                lines.append(f"| {s['sampler']} {s['steps']}, CFG {s['cfg_scale']:g} | {f(k['acc_gen_mean'])} ({f(k['acc_real_mean'])}) | "
                             f"{k['d_gen_mean']:.2f} ({k['d_real_mean']:.2f}) |")
        first = next((g for g in gen.values() if g.get("keyword_control")), None)
        if first:
            s = first["settings"]
            lines += ["", f"keyword control, {s['sampler']} {s['steps']} steps, {s['keyword_n']} kicks per prompt:", "",
                      "| keyword | vs | descriptor | acc held-out | acc gen | d held-out | d gen |",
                      "|---|---|---|---|---|---|---|"]
            for row in first["keyword_control"]:
                lines.append(f"| {row['keyword']} | {row['vs']} | {row['descriptor']} ({row['direction']}) | "
                             f"{f(row['acc_real'])} | {f(row['acc_gen'])} | {row['d_real']:.2f} | {row['d_gen']:.2f} |")
    return "\n".join(lines)


PLOT_PROMPTS = (["synth", "short"], ["synth", "long"], ["synth", "sub"], ["synth", "high"], ["synth", "distorted"],
                ["synth", "clean"])


@torch.no_grad()
def figures(pipe, dm, results: dict, folder: Path, sampler: str, steps: int, cfg_scale: float, n: int = 4) -> None:
    """mel_grid.png: held-out kicks (real, synthetic) and generated kicks per keyword prompt (seeds 0..n-1, same seeds per prompt);
    keyword_effects.png: Cohen's d of each keyword's stump descriptor, held-out labelled clips vs generated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audiolab.models.kick.plots import mel_grid

    rows = dm.rows("test")
    real = [i for i, r in enumerate(rows) if r["source"] != "synthetic"][:n]
    syn = [i for i, r in enumerate(rows) if r["source"] == "synthetic"][:n]
    cols = {"held-out real": [dm.mels("test")[i, 0] for i in real],
            "held-out synthetic": [dm.mels("test")[i, 0] for i in syn]}
    gen_real = pipe.generate([list(rows[i]["keywords"]) for i in real], list(range(len(real))), sampler=sampler,
                             steps=steps, cfg_scale=cfg_scale, vocode=False)
    cols["gen (real prompts)"] = list(gen_real.mels[:, 0])
    for prompt in PLOT_PROMPTS:
        if all(w in pipe.vocabulary.words for w in prompt):
            g = pipe.generate([prompt] * n, list(range(n)), sampler=sampler, steps=steps, cfg_scale=cfg_scale,
                              vocode=False)
            cols[" ".join(prompt)] = list(g.mels[:, 0])
    fig = mel_grid(cols)
    fig.savefig(folder / "mel_grid.png", dpi=60)
    plt.close(fig)
    from PIL import Image

    # a 64-colour palette: ~90 KB instead of ~400 KB in git
    Image.open(folder / "mel_grid.png").convert("RGB").quantize(64).save(folder / "mel_grid.png", optimize=True)
    key = f"{sampler}_{steps}_cfg{cfg_scale:g}"
    table = (results.get("generation", {}).get(key) or {}).get("keyword_control")
    if table:
        fig, ax = plt.subplots(figsize=(7, 3))
        x = np.arange(len(table))
        ax.bar(x - 0.2, [r["d_real"] for r in table], 0.4, label="held-out labelled clips (ceiling)")
        ax.bar(x + 0.2, [r["d_gen"] for r in table], 0.4, label=f"generated ({sampler} {steps}, cfg {cfg_scale:g})")
        ax.set_xticks(x, [f"{r['keyword']} vs {r['vs']}\n({r['descriptor']})" for r in table], fontsize=6)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel("Cohen's d (signed)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "keyword_effects.png", dpi=80)
        plt.close(fig)


if __name__ == "__main__":
    main()
