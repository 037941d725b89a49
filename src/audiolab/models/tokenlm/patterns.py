"""Codebook interleaving patterns for a multi-codebook token LM: ``delay`` (MusicGen / Dia) and ``parallel``.

Token ids (one vocabulary per codebook, ``card`` = codebook size)::

    0 .. card-1   codec codes
    PAD = card    after the end of the sequence (and after EOS)
    BOS = card+1  the initial step and the leading gap of a delayed codebook
    EOS = card+2  optional (``eos=True``): exactly one per codebook, right after its last code

The model embeds ``card + 3`` ids per codebook and predicts ``card`` (``+1`` with EOS) logits: BOS and PAD are
inputs only, never targets (audiocraft's heads do not predict the special token either).

Layout of ``T`` frames with delays ``d_k`` (``D = max d_k``), ``S = 1 + T + D (+1 with EOS)`` steps. Step 0 is an
all-BOS step (audiocraft's empty initial step, Dia's BOS row); for ``s >= 1`` and ``t = s - 1 - d_k``::

    seq[k, s] = BOS       if t < 0
              = codes[k, t] if 0 <= t < T
              = EOS       if t == T and eos (only when the sequence really ends there, see ``ended``)
              = PAD       otherwise

MusicGen delays ``0..K-1`` give for T=4, K=3 (S = BOS): ``[[S,1,2,3,4,P,P],[S,S,1,2,3,4,P],[S,S,S,1,2,3,4]]`` whose
first ``T+1`` columns are audiocraft's ``keep_only_valid_steps`` layout (its docstring example). With ``eos`` the
layout is exactly the ``transformers`` Dia processor's training input (BOS row, codes, EOS, then the delay with BOS
in front and PAD behind), and ``seq[:, 1:]`` with BOS/PAD ignored is its ``labels``.

Training uses the *whole* layout (``S`` steps): the model sees at generation exactly the PAD tail it saw in
training, and the last codes of the delayed codebooks (audiocraft's never-trained NaN triangle) are trained too.
``parallel`` = all delays 0 (every codebook of a frame predicted at once).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

PATTERN_KINDS = ("delay", "parallel")
#: Dia's delays for 9 codebooks: codebook 0 undelayed, the others 8..15 frames behind.
DIA_DELAYS = (0, 8, 9, 10, 11, 12, 13, 14, 15)
#: Marks a not-yet-generated position in a generation template (never an input to the model).
UNKNOWN = -1


class DelayPattern:
    """Build / revert the delay (or parallel) layout; masks for the loss and for generation.

    Args:
        n_q: number of codebooks ``K``.
        card: codebook size (codes ``0..card-1``).
        kind: ``"delay"`` or ``"parallel"`` (all delays 0).
        delays: per-codebook delays in frames (``delay`` only); ``None`` = MusicGen's ``0..K-1``.
        eos: append one EOS per codebook after the last code of a sequence that ends.
    """

    def __init__(self, n_q: int, card: int, kind: str = "delay", delays: Sequence[int] | None = None,
                 eos: bool = False) -> None:
        if kind not in PATTERN_KINDS:
            raise ValueError(f"pattern kind {kind!r} unknown; allowed: {list(PATTERN_KINDS)}")
        if n_q < 1 or card < 2:
            raise ValueError(f"need n_q >= 1 and card >= 2, got n_q={n_q}, card={card}")
        if kind == "parallel":
            if delays is not None and any(int(d) != 0 for d in delays):
                raise ValueError(f"pattern kind 'parallel' takes no delays, got {list(delays)}")
            delays = [0] * n_q
        elif delays is None:
            delays = list(range(n_q))
        delays = [int(d) for d in delays]
        if len(delays) != n_q:
            raise ValueError(f"pattern.delays has {len(delays)} entries for n_q={n_q} codebooks: {delays}")
        if min(delays) < 0:
            raise ValueError(f"pattern.delays must be >= 0, got {delays}")
        self.n_q, self.card, self.kind, self.eos = int(n_q), int(card), kind, bool(eos)
        self.delays = delays
        self.max_delay = max(delays)
        self.min_delay = min(delays)
        self.pad_id, self.bos_id, self.eos_id = self.card, self.card + 1, self.card + 2
        #: embedding rows per codebook (codes + PAD + BOS + EOS; the EOS row is unused without eos)
        self.n_input = self.card + 3
        #: output logits per codebook (codes, + EOS at index ``card`` when ``eos``)
        self.n_output = self.card + (1 if self.eos else 0)

    def __repr__(self) -> str:
        return f"DelayPattern(kind={self.kind!r}, n_q={self.n_q}, card={self.card}, delays={self.delays}, eos={self.eos})"

    # ------------------------------------------------------------------------------------------------ lengths
    def seq_len(self, n_frames: int) -> int:
        """Steps ``S`` of the layout of ``n_frames`` frames (initial BOS step included)."""
        return 1 + int(n_frames) + self.max_delay + (1 if self.eos else 0)

    def n_frames(self, seq_len: int) -> int:
        """Frames ``T`` held by a layout of ``seq_len`` steps (inverse of :meth:`seq_len`)."""
        t = int(seq_len) - 1 - self.max_delay - (1 if self.eos else 0)
        if t < 0:
            raise ValueError(f"a layout of {seq_len} steps is shorter than the pattern's overhead ({self.seq_len(0)})")
        return t

    def _frame_index(self, seq_len: int, device: torch.device | None = None) -> Tensor:
        """``t = s - 1 - d_k`` as ``[K, S]`` long."""
        s = torch.arange(seq_len, device=device).unsqueeze(0)
        d = torch.tensor(self.delays, device=device).unsqueeze(1)
        return s - 1 - d

    # ------------------------------------------------------------------------------------------------ build
    def build(self, codes: Tensor, lengths: Tensor | None = None, ended: Tensor | bool = True) -> Tensor:
        """Interleave ``codes`` ``[B, K, T]`` (long, ``0..card-1``) into the layout ``[B, K, S]``.

        Args:
            codes: ``[B, K, T]``; positions at or beyond ``lengths`` are ignored (any value).
            lengths: ``[B]`` valid frames per item (default ``T``): shorter items get PAD (or EOS) after them.
            ended: ``[B]`` bool or a bool: whether the item's audio really ends at its length. Only then is the
                EOS written (``eos=True``); a training crop cut out of a longer file gets PAD there instead.
        """
        if codes.dim() != 3 or codes.shape[1] != self.n_q:
            raise ValueError(f"expected codes [B, {self.n_q}, T], got {tuple(codes.shape)}")
        b, _, t_max = codes.shape
        dev = codes.device
        lengths = torch.full((b,), t_max, device=dev, dtype=torch.long) if lengths is None else lengths.to(dev).long()
        ended_t = torch.as_tensor(ended, device=dev, dtype=torch.bool).expand(b)
        s_len = self.seq_len(t_max)
        t_idx = self._frame_index(s_len, dev).unsqueeze(0).expand(b, -1, -1)  # [B, K, S]
        length = lengths.view(b, 1, 1)
        gathered = torch.gather(codes.long(), 2, t_idx.clamp(0, max(t_max - 1, 0))) if t_max > 0 else \
            torch.zeros_like(t_idx)
        seq = torch.full_like(t_idx, self.pad_id)
        seq = torch.where(t_idx < 0, torch.full_like(seq, self.bos_id), seq)
        real = (t_idx >= 0) & (t_idx < length)
        seq = torch.where(real, gathered, seq)
        if self.eos:
            at_end = (t_idx == length) & ended_t.view(b, 1, 1)
            seq = torch.where(at_end, torch.full_like(seq, self.eos_id), seq)
        return seq

    def revert(self, seq: Tensor, n_frames: int | None = None) -> Tensor:
        """Codes ``[B, K, T]`` back from a layout ``[B, K, S]`` (exact inverse of :meth:`build` on real positions).

        ``n_frames`` defaults to :meth:`n_frames` of ``S``; positions that hold no code (PAD/EOS of a shorter
        item) come back as they are in the layout (ids >= card).
        """
        if seq.dim() != 3 or seq.shape[1] != self.n_q:
            raise ValueError(f"expected a layout [B, {self.n_q}, S], got {tuple(seq.shape)}")
        t = self.n_frames(seq.shape[2]) if n_frames is None else int(n_frames)
        idx = torch.arange(t, device=seq.device).unsqueeze(0) + 1 + torch.tensor(self.delays, device=seq.device).unsqueeze(1)
        if t and int(idx.max()) >= seq.shape[2]:
            raise ValueError(f"a layout of {seq.shape[2]} steps holds fewer than {t} frames")
        return torch.gather(seq, 2, idx.unsqueeze(0).expand(seq.shape[0], -1, -1))

    # ------------------------------------------------------------------------------------------------ masks
    def code_mask(self, seq_len: int, n_frames: int | None = None, device: torch.device | None = None) -> Tensor:
        """``[K, S]`` bool: True where the layout of ``n_frames`` frames holds a real code."""
        t_idx = self._frame_index(seq_len, device)
        t = self.n_frames(seq_len) if n_frames is None else n_frames
        return (t_idx >= 0) & (t_idx < t)

    def loss_mask(self, targets: Tensor) -> Tensor:
        """``[B, K, S-1]`` bool over the targets ``seq[..., 1:]``: real codes, and EOS (one per codebook) when on.

        BOS and PAD are never targets; an out-of-range id (>= card, not EOS) never is either.
        """
        mask = (targets >= 0) & (targets < self.card)
        if self.eos:
            mask = mask | (targets == self.eos_id)
        return mask

    def target_ids(self, targets: Tensor) -> Tensor:
        """Map layout ids to output-class ids: codes stay, EOS -> ``card``; masked positions -> ``-100``."""
        out = torch.where(self.loss_mask(targets), targets, torch.full_like(targets, -100))
        if self.eos:
            out = torch.where(targets == self.eos_id, torch.full_like(out, self.card), out)
        return out

    # ------------------------------------------------------------------------------------------------ generation
    def template(self, batch: int, n_frames: int, prompt: Tensor | None = None, device: torch.device | None = None) -> Tensor:
        """Generation template ``[B, K, S]``: BOS/PAD where the pattern fixes them, the prompt codes placed once
        (never re-delayed: they are put by :meth:`build` from the *undelayed* prompt), :data:`UNKNOWN` elsewhere.

        Without EOS the length is fixed (``n_frames``); with EOS, ``n_frames`` is the longest output (EOS written
        there) and :meth:`finish` moves the end when the model emits EOS earlier.
        """
        s_len = self.seq_len(n_frames)
        t_idx = self._frame_index(s_len, device).unsqueeze(0).expand(batch, -1, -1)
        seq = torch.full((batch, self.n_q, s_len), UNKNOWN, dtype=torch.long, device=device)
        seq[t_idx < 0] = self.bos_id
        seq[t_idx >= n_frames] = self.pad_id
        if self.eos:  # the sequence ends at n_frames at the latest; an earlier EOS moves it (finish)
            seq[t_idx == n_frames] = self.eos_id
        if prompt is not None:
            if prompt.dim() != 3 or prompt.shape[0] != batch or prompt.shape[1] != self.n_q:
                raise ValueError(f"prompt must be [{batch}, {self.n_q}, P], got {tuple(prompt.shape)}")
            p = prompt.shape[2]
            if p > n_frames:
                raise ValueError(f"prompt of {p} frames is longer than the {n_frames} frames to generate")
            placed = self.build(prompt.to(device), ended=False)  # [B, K, 1 + P + D (+1)]
            keep = (t_idx[:, :, : placed.shape[2]] >= 0) & (t_idx[:, :, : placed.shape[2]] < p)
            seq[:, :, : placed.shape[2]][keep] = placed[keep]
        return seq

    def first_unknown_step(self, seq: Tensor) -> int:
        """First step that still holds an UNKNOWN position (the first to generate)."""
        unknown = (seq == UNKNOWN).any(dim=1).any(dim=0)  # [S]
        idx = torch.nonzero(unknown)
        return int(idx[0]) if len(idx) else seq.shape[2]

    def finish(self, seq: Tensor, item: int, end_frame: int) -> None:
        """In place: item ``item`` ends at ``end_frame`` (EOS there for every codebook, PAD after), the Dia cascade."""
        t_idx = self._frame_index(seq.shape[2], seq.device)
        seq[item][t_idx == end_frame] = self.eos_id
        seq[item][t_idx > end_frame] = self.pad_id
