"""What the text-to-image models (text_cgan, stackgan) share: the check that the data is captioned, a bank of
training caption embeddings (and their images' labels) for `sample()` without text, the logged figure's captions
with fixed noise, and drawing that figure with each caption written beside its row.

Everything a resumed run needs is a buffer (the bank, the figure's embeddings and noise) or saved in the checkpoint
(the figure's caption strings).
"""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import make_grid

from gan_cli.data.datamodule import denormalize
from gan_cli.errors import UserError
from gan_cli.models.contract import TextSampler


def wrap(text: str, font, width: float) -> str:
    """`text` with line breaks between words so that no line is wider than `width` pixels in `font`."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def caption_panel(captions: Sequence[str], height: int, max_width: int = 360) -> list[Tensor]:
    """Each caption rendered white on black, one (1, height, width) [0, 1] image per caption: as wide as the
    longest caption (at most `max_width` pixels, longer ones wrapped)."""
    font = ImageFont.load_default()
    width = int(min(max(font.getlength(c) for c in captions) + 8, max_width))
    panels = []
    for caption in captions:
        image = Image.new("L", (width, height))
        ImageDraw.Draw(image).multiline_text((4, 2), wrap(caption, font, width - 8), fill=255, font=font, spacing=1)
        panels.append(pil_to_tensor(image).float() / 255)
    return panels


def captioned_rows(images: Tensor, captions: Sequence[str]) -> Tensor:
    """One figure: row i shows caption i beside its images. `images` are [0, 1], (len(captions) * k, C, H, W)
    with caption i's k images consecutive. Returns a (C, H', W') [0, 1] image."""
    per_row = images.size(0) // len(captions)
    rows = []
    for i, panel in enumerate(caption_panel(captions, images.size(2) + 4)):
        row = make_grid(images[i * per_row:(i + 1) * per_row], nrow=per_row, padding=2, pad_value=1.0)
        rows.append(torch.cat([panel.expand(row.size(0), -1, -1), row], dim=2))  # make_grid gives RGB
    return torch.cat(rows, dim=1)


class TextConditioned(TextSampler):
    """Mixin for a text-to-image AdversarialModule (listed before it in the bases). The model sets
    `config_name` (its model= name, for messages) and `num_classes`, and calls `init_text_conditioning` in
    its __init__; `on_fit_start` checks the data and picks the figure's captions."""

    config_name = "?"

    def init_text_conditioning(self, text_dim: int, latent_dim: int, bank_size: int, figure_captions: int,
                               samples_per_caption: int) -> None:
        self.text_dim, self.samples_per_caption = text_dim, samples_per_caption
        # Embeddings (and labels) of training captions, a ring buffer: `bank_count` captions seen so far.
        self.register_buffer("bank_text", torch.zeros(bank_size, text_dim))
        self.register_buffer("bank_label", torch.zeros(bank_size, dtype=torch.long))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))
        # The logged figure: fixed test captions (encoded at fit start), each with fixed noise.
        self.figure_captions: list[str] = []
        self.register_buffer("figure_text", torch.zeros(figure_captions, text_dim))
        self.register_buffer("figure_z", torch.randn(figure_captions * samples_per_caption, latent_dim))

    # --- the data ----------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "captions") or not hasattr(datamodule, "text_encoder"):
            raise UserError(f"model={self.config_name} draws images for sentences and needs captioned data: "
                            f"data=mnist_5k_captions (this run has {type(datamodule).__name__}, without captions).")
        if datamodule.text_encoder.dim != self.text_dim:
            raise UserError(f"The data's text encoder gives {datamodule.text_encoder.dim}-D embeddings but the model was "
                            f"built for {self.text_dim}-D: leave the model's text_dim at ${{text_encoder.dim}}.")
        if not self.figure_captions:  # a resumed run has them from its checkpoint
            self.set_figure_captions(datamodule.captions("test"), datamodule.text_encoder)

    def set_figure_captions(self, captions: Sequence[Sequence[str]], encoder) -> None:
        """Pick the figure's captions from a split's captions (one list per image), spread over the split, their
        phrasings taken in turn, and encode them once."""
        count = self.figure_text.size(0)
        picks = torch.linspace(0, len(captions) - 1, count).round().long().tolist()
        self.figure_captions = [captions[i][k % len(captions[i])] for k, i in enumerate(picks)]
        self.figure_text.copy_(encoder.encode(self.figure_captions).to(self.figure_text))

    # --- the bank of training captions -------------------------------------------------------------
    @torch.no_grad()
    def remember(self, text: Tensor, labels: Tensor | None) -> None:
        """Keep a batch's caption embeddings (and labels) in the bank, overwriting the oldest when it is full."""
        size = self.bank_text.size(0)
        slots = (self.bank_count + torch.arange(text.size(0), device=text.device)) % size
        self.bank_text[slots] = text.to(self.bank_text)
        if labels is not None:
            self.bank_label[slots] = labels.to(self.bank_label)
        self.bank_count += text.size(0)

    def bank_embeddings(self, n: int, labels: Tensor | None) -> Tensor:
        """n embeddings of training captions drawn from the bank, of images with the given labels if any."""
        filled = int(min(self.bank_count.item(), self.bank_text.size(0)))
        if filled == 0:
            raise UserError(f"This {self.config_name} has seen no captions yet (no training step): give the captions to "
                            "draw for (gan-sample text=\"...\" or text_file=...), or train it first.")
        if labels is None or not self.num_classes:
            return self.bank_text[torch.randint(0, filled, (n,), device=self.device)]
        rows = []
        for label in labels.tolist():
            candidates = (self.bank_label[:filled] == label).nonzero().flatten()
            if len(candidates) == 0:
                raise UserError(f"No caption of label {label} has been seen in training: give text= instead of label=.")
            rows.append(candidates[torch.randint(0, len(candidates), (1,), device=self.device)])
        return self.bank_text[torch.cat(rows)]

    def sampling_text(self, n: int, labels: Tensor | None, text: Tensor | None) -> Tensor:
        """The (n, text_dim) embeddings `sample(n, labels, text)` draws for: `text` ((n, dim), or (1, dim) for all),
        else training captions from the bank."""
        if text is None:
            text = self.bank_embeddings(n, labels)
        if text.dim() != 2 or text.size(1) != self.text_dim or text.size(0) not in (1, n):
            raise UserError(f"text embeddings shaped {tuple(text.shape)} do not fit this model: it takes ({n}, "
                            f"{self.text_dim}) (text_encoder.dim={self.text_dim}, the encoder it was trained with).")
        return text.to(self.device, torch.float32).expand(n, -1)

    # --- the logged figure -------------------------------------------------------------------------
    def figure_inputs(self) -> tuple[Tensor, Tensor]:
        """(noise, text) of the figure's samples: `samples_per_caption` consecutive ones per caption."""
        return self.figure_z, self.figure_text.repeat_interleave(self.samples_per_caption, dim=0)

    def captioned_figure(self, images: Tensor, captions: Sequence[str]) -> Tensor:
        """(1, C, H, W) in data space: row i caption i beside its images (`images` in data space, caption i's
        consecutive)."""
        mean, std = self.data_stats()
        figure = captioned_rows(denormalize(images.float().cpu(), mean, std).clamp(0, 1), captions)
        return ((figure - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None])[None]

    def data_stats(self) -> tuple[list[float], list[float]]:
        """The data's normalisation (0.5, 0.5 for a model read back without its data)."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        return list(getattr(datamodule, "mean", [0.5])), list(getattr(datamodule, "std", [0.5]))

    # --- checkpoints -------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_cli"]["figure_captions"] = self.figure_captions

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.figure_captions = list(checkpoint.get("gan_cli", {}).get("figure_captions", []))
